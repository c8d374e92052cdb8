"""RGB-D dataset: measured depth (and, when refined, its confidence) per image; never pseudo-depth.

Every image also carries `depth_edge_distance`: how far (whole pixels, uint8, capped) each pixel lies from the
nearest depth discontinuity of its depth image, so the model can trust depth less at occluding edges
(`DiffNerfModelConfig.depth_edge_band`). It is computed once, when the image is loaded and cached.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from nerfstudio.data.dataparsers.base_dataparser import DataparserOutputs
from nerfstudio.data.datasets.depth_dataset import DepthDataset
from PIL import Image

from data_converters.depth_alignment import distance_to_discontinuity

EDGE_DISTANCE_CAP = 32
"""Distances to a depth discontinuity are stored up to this many pixels (one byte per pixel)."""


class RGBDDataset(DepthDataset):
    """nerfstudio's DepthDataset minus its ZoeDepth fallback (which needs the network), plus confidence."""

    def __init__(self, dataparser_outputs: DataparserOutputs, scale_factor: float = 1.0):
        if dataparser_outputs.metadata.get("depth_filenames") is None:
            raise ValueError(
                "diffnerf needs measured depth: the dataparser gave no depth_filenames. "
                "Use the `rgbd` dataparser or a transforms.json whose frames have depth_file_path."
            )
        super().__init__(dataparser_outputs, scale_factor)
        self.confidence_filenames = self.metadata.get("depth_confidence_filenames")

    def get_metadata(self, data: dict) -> dict:
        out = super().get_metadata(data)
        depth = out["depth_image"][..., 0].numpy()
        distance = np.round(distance_to_discontinuity(depth, cap=EDGE_DISTANCE_CAP)).astype(np.uint8)
        out["depth_edge_distance"] = torch.from_numpy(distance)[..., None]
        if self.confidence_filenames is not None:
            # Refined depth: confidence per pixel; frames the refiner skipped keep raw depth at confidence 1.
            h, w = out["depth_image"].shape[:2]
            path = self.confidence_filenames[data["image_idx"]]
            conf = np.ones((h, w), np.float32)
            if path is not None:
                raw = np.asarray(Image.open(path))
                conf = raw.astype(np.float32) / np.iinfo(raw.dtype).max
                conf = cv2.resize(conf, (w, h), interpolation=cv2.INTER_NEAREST)
            out["depth_confidence"] = torch.from_numpy(conf)[..., None]
        return out
