"""RGB-D dataset: measured depth (and, when refined, its confidence) per image; never pseudo-depth."""

from __future__ import annotations

import numpy as np
import torch
from nerfstudio.data.dataparsers.base_dataparser import DataparserOutputs
from nerfstudio.data.datasets.depth_dataset import DepthDataset
from PIL import Image


class RGBDDataset(DepthDataset):
    """nerfstudio's DepthDataset minus its ZoeDepth fallback (which needs the network), plus confidence."""

    def __init__(self, dataparser_outputs: DataparserOutputs, scale_factor: float = 1.0):
        if dataparser_outputs.metadata.get("depth_filenames") is None:
            raise ValueError(
                "diffnerf needs measured depth: the dataparser gave no depth_filenames. "
                "Use the `nyu` dataparser or a transforms.json whose frames have depth_file_path."
            )
        super().__init__(dataparser_outputs, scale_factor)
        self.confidence_filenames = self.metadata.get("depth_confidence_filenames")

    def get_metadata(self, data: dict) -> dict:
        out = super().get_metadata(data)
        path = self.confidence_filenames[data["image_idx"]] if self.confidence_filenames else None
        if path is not None:
            h, w = out["depth_image"].shape[:2]
            conf = np.asarray(Image.open(path).convert("L").resize((w, h), Image.NEAREST), dtype=np.float32)
            out["depth_confidence"] = torch.from_numpy(conf / 255.0)[..., None]
        return out
