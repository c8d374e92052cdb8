"""The `rgbd` DataParser (alias `nyu`): any RGB-D capture or converted scene, in metric scene units.

Whatever `--data` is (NYU raw folder or labeled .mat, TUM, Redwood/ICL, 3DMatch/7-Scenes/SUN3D, a
plain colour + depth folder, or a converted scene), its layout is detected and it is converted once
into a cache (`data_converters.resolve`). The converted scene is then read by nerfstudio's own parser,
configured as a copy of this parser's config: the config itself is never changed, so a saved
`config.yml` still names the user's input and a rerun reuses the cache. Poses are
centred but not rescaled, so one scene unit is one metre and depth supervision needs no
rescaling. The scene box is fitted to the back-projected depth, so it covers the whole room,
not just the camera path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from nerfstudio.data.dataparsers.base_dataparser import DataparserOutputs
from nerfstudio.data.dataparsers.nerfstudio_dataparser import Nerfstudio, NerfstudioDataParserConfig
from nerfstudio.data.scene_box import SceneBox
from nerfstudio.plugins.registry_dataparser import DataParserSpecification

from data_converters.layouts import Layout
from data_converters.nerfstudio_scene import (
    OPENCV_TO_OPENGL,
    backproject,
    intrinsics_at,
    read_depth_png,
    scene_depth_unit,
)
from data_converters.phone import check_scene_has_depth, polycam_confidence
from diffnerf_ns.data_split import EVAL_INTERVAL


@dataclass
class RgbdDataParserConfig(NerfstudioDataParserConfig):
    """Any RGB-D capture (layout detected) or converted scene; metric units, every 8th frame held out by default."""

    _target: type = field(default_factory=lambda: RgbdDataParser)
    data: Path = Path("outputs/demo_scene")
    """A converted scene (transforms.json), a capture folder of any supported layout, or nyu_depth_v2_labeled.mat."""
    layout: Layout = "auto"
    """Capture layout; 'auto' detects it from the files."""
    poses: Literal["given", "estimate"] = "given"
    """'estimate' re-estimates poses with RGB-D odometry even when the capture gives them."""
    depth_unit: float = 1e-3
    """Metres per stored depth value, for plain folders only (other layouts define their unit)."""
    depth_alignment: Literal["auto", "apply", "measure", "camera", "off"] = "auto"
    """Depth-to-colour misalignment when a capture is converted: measured from edges always, corrected where the
    layout gives no registration ('auto'); 'camera' fits the camera unregistered depth came from (7-Scenes) and
    registers depth with it (see `data_converters.convert.ConvertOptions.depth_alignment`)."""
    trajectory_scale: Literal["measure", "apply", "off"] = "measure"
    """Whether the poses agree in scale with the depth when a capture is converted: 'measure' warns where they do
    not, 'apply' rescales the path where the check is firm (`data_converters.convert.ConvertOptions`)."""
    given_intrinsics: Literal["colour", "depth"] = "colour"
    """Which camera the capture's intrinsics describe: 'depth' for 7-Scenes' usual 585 px (needs
    `depth-alignment camera`, which derives the colour camera's)."""
    scene_name: str | None = None
    """Scene to export when --data is the labeled .mat (e.g. bedroom_0001)."""
    cache_dir: Path | None = None
    """Where raw input is converted to (default: beside the input); reused on later runs."""
    depth_source: Literal["raw", "refined"] = "raw"
    """'refined' supervises with prior-refined depth where `diffnerf-prior refine` wrote it."""
    scale_factor: float = 1.0
    """Scene units per metre. Keep 1.0 so depth losses and jitter ranges are in metres."""
    auto_scale_poses: bool = False
    orientation_method: Literal["pca", "up", "vertical", "none"] = "none"
    """Converted NYU raw scenes are levelled z-up from the accelerometer; other layouts keep their world frame."""
    center_method: Literal["poses", "focus", "none"] = "poses"
    eval_mode: Literal["fraction", "filename", "interval", "all"] = "interval"
    eval_interval: int = EVAL_INTERVAL
    """Every eval_interval-th frame is held out for evaluation."""
    scene_box_percentile: float = 0.5
    """Depth points outside this percentile (per axis, each side) are ignored when fitting the box."""
    scene_box_margin: float = 0.1
    """Fractional padding of the fitted box."""

    def data_problem(self) -> str | None:
        """Why `data` cannot be read (missing, or no layout recognised), naming it, or None; nothing is converted."""
        data = Path(self.data)
        if (data / "transforms.json").exists():
            return None
        if not data.exists():
            return f"--data {data}: no such file or folder"
        from data_converters.capture import CaptureFormatError
        from data_converters.resolve import detect_layout

        try:
            detect_layout(data) if self.layout == "auto" else None
        except CaptureFormatError as err:
            return str(err)
        return None


class RgbdDataParser(Nerfstudio):
    """Resolves the input to a converted scene, then parses it with metric settings and a room-sized box."""

    config: RgbdDataParserConfig

    def _generate_dataparser_outputs(self, split: str = "train", **kwargs) -> DataparserOutputs:
        scene_dir = self._resolve_scene()
        check_scene_has_depth(scene_dir)
        meta = json.loads((scene_dir / "transforms.json").read_text())
        unit = self._depth_unit(scene_dir, meta)
        scene_parser = Nerfstudio(replace(self.config, data=scene_dir, depth_unit_scale_factor=unit))
        outputs = scene_parser._generate_dataparser_outputs(split, **kwargs)
        # The box comes from the raw training depth whatever the split and depth source, so ablations that differ
        # only by the prior get the same box.
        train = outputs if split == "train" else scene_parser._generate_dataparser_outputs("train", **kwargs)
        lo, hi = self._room_bounds(scene_dir, train, unit)
        if self.config.depth_source == "refined" and split == "train":
            # Held-out views keep their raw sensor depth: depth metrics never score against the prior's fills.
            outputs = self._use_refined_depth(outputs, scene_dir, meta, scene_parser)
        outputs.scene_box = SceneBox(aabb=torch.stack([lo, hi]).float())
        outputs.metadata["dataparser_scale"] = outputs.dataparser_scale
        return outputs

    def get_dataparser_outputs(self, split: str = "train", **kwargs) -> DataparserOutputs:
        """nerfstudio's entry point; a scene given as --data gets its training frames' raw depth weighted by the
        sensor's own confidence where the scene still has it (a Polycam zip processed by `ns-process-data polycam
        --use-depth`)."""
        scene_dir = Path(self.config.data)
        outputs = super().get_dataparser_outputs(split, **kwargs)
        if (scene_dir / "transforms.json").is_file() and split == "train":
            outputs = self._use_sensor_confidence(outputs, scene_dir)
        return outputs

    def _use_sensor_confidence(self, outputs: DataparserOutputs, scene_dir: Path) -> DataparserOutputs:
        """Per-pixel sensor confidence for frames supervised by raw depth; refined frames keep the prior's own.

        Frames are matched by image file name, which `--downscale-factor N` keeps (only the folder changes).
        """
        meta = json.loads((scene_dir / "transforms.json").read_text())
        sensor = polycam_confidence(scene_dir, meta)
        if sensor is None:
            return outputs
        names = [Path(f["file_path"]).name for f in meta["frames"]]
        if len(set(names)) != len(names):
            return outputs
        by_name = dict(zip(names, zip(meta["frames"], sensor, strict=True), strict=True))
        depths = outputs.metadata["depth_filenames"]
        current = outputs.metadata.get("depth_confidence_filenames") or [None] * len(depths)
        confidence = []
        for image, depth, conf in zip(outputs.image_filenames, depths, current, strict=True):
            frame, sensor_conf = by_name[Path(image).name]
            refined = frame.get("refined_depth_file_path")
            uses_refined = refined is not None and Path(depth) == scene_dir / refined
            confidence.append(conf if uses_refined else sensor_conf)
        outputs.metadata["depth_confidence_filenames"] = confidence
        return outputs

    def _depth_unit(self, scene_dir: Path, meta: dict) -> float:
        """Metres per stored depth value, for the raw depth and every layer added to it (refined depth is written
        in the raw depth's unit): the scene's own `depth_unit_scale_factor` where transforms.json declares one
        (nerfstudio itself ignores that key), else `--depth-unit-scale-factor`. A value given that contradicts
        the scene's is an error, not a silent choice; the default 1e-3 counts as not given."""
        declared = scene_depth_unit(meta)
        given = float(self.config.depth_unit_scale_factor)
        if declared is None or given == declared:
            return given
        if given != NerfstudioDataParserConfig.depth_unit_scale_factor:
            raise ValueError(
                f"{scene_dir / 'transforms.json'} stores depth in units of {declared} m "
                f"(depth_unit_scale_factor), but --depth-unit-scale-factor {given} was given; drop one of them"
            )
        return declared

    def _resolve_scene(self) -> Path:
        data = Path(self.config.data)
        if (data / "transforms.json").exists():
            return data
        if not data.exists():
            raise FileNotFoundError(f"--data {data}: no such file or folder")
        # Imported here: conversion pulls in open3d, which `ns-train --help` should not wait for.
        from data_converters.convert import ConvertOptions
        from data_converters.resolve import ensure_nerfstudio_scene

        return ensure_nerfstudio_scene(
            data,
            cache_dir=self.config.cache_dir,
            scene_name=self.config.scene_name,
            layout=self.config.layout,
            options=ConvertOptions(
                poses=self.config.poses,
                depth_alignment=self.config.depth_alignment,
                trajectory_scale=self.config.trajectory_scale,
                given_intrinsics=self.config.given_intrinsics,
            ),
            depth_unit=self.config.depth_unit,
        )

    def _use_refined_depth(
        self, outputs: DataparserOutputs, scene_dir: Path, meta: dict, scene_parser: Nerfstudio
    ) -> DataparserOutputs:
        """Swap in refined depth (and its confidence) per frame, keeping raw depth where none was written.

        Frames are matched by the image path nerfstudio hands out, which `--downscale-factor N` moves to
        `images_N/`; the refined layers stay at full resolution (the dataset resizes depth to the image).
        They are stored like the raw depth they replace (its unit, its resolution: `refine_scene`), so the one
        `depth_unit_scale_factor` nerfstudio's dataset applies to every depth file reads both in metres.
        """
        by_image = {scene_parser._get_fname(Path(f["file_path"]), scene_dir).resolve(): f for f in meta["frames"]}
        depth, confidence = [], []
        for image in outputs.image_filenames:
            frame = by_image[Path(image).resolve()]
            refined = frame.get("refined_depth_file_path")
            depth.append(scene_dir / (refined or frame["depth_file_path"]))
            conf = frame.get("depth_confidence_file_path") if refined else None
            confidence.append(scene_dir / conf if conf else None)
        outputs.metadata["depth_filenames"] = depth
        outputs.metadata["depth_confidence_filenames"] = confidence
        return outputs

    def _room_bounds(
        self, scene_dir: Path, train: DataparserOutputs, depth_unit: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Box around the training frames' back-projected depth, in the parser's output frame.

        Only training frames count, so held-out views leak nothing, and every split gets the same box.
        """
        cameras, scale = train.cameras, float(train.dataparser_scale)
        intrinsics = cameras.get_intrinsics_matrices().numpy()
        points = []
        for i, path in enumerate(train.metadata["depth_filenames"]):
            # In the dataset's unit (metres per stored value, as nerfstudio reads it), times the scene scale.
            depth = read_depth_png(Path(path), depth_unit) * scale
            # Depth may be stored at a different resolution than the (possibly downscaled) camera.
            K = intrinsics_at(intrinsics[i], (int(cameras.height[i]), int(cameras.width[i])), depth.shape)
            c2w = np.vstack([cameras.camera_to_worlds[i].numpy(), [0, 0, 0, 1]]) @ OPENCV_TO_OPENGL
            points.append(backproject(depth, K, c2w, stride=8))
        pts = np.concatenate(points)
        if len(pts) == 0:
            raise ValueError(f"{scene_dir}: every training depth map is empty; cannot bound the scene")
        q = self.config.scene_box_percentile
        lo, hi = np.percentile(pts, q, axis=0), np.percentile(pts, 100 - q, axis=0)
        # Cameras must be inside the box even where their depth saw nothing behind them.
        centres = cameras.camera_to_worlds[:, :3, 3].numpy()
        lo, hi = np.minimum(lo, centres.min(0)), np.maximum(hi, centres.max(0))
        pad = self.config.scene_box_margin * (hi - lo)
        return torch.from_numpy(lo - pad), torch.from_numpy(hi + pad)


# Registered here, not beside the methods: nerfstudio loads dataparser entry points while its
# datamanager module is still importing, so this module must not import the datamanager.
rgbd_dataparser = DataParserSpecification(
    config=RgbdDataParserConfig(),
    description="any RGB-D capture (NYU, TUM, Redwood/ICL, 3DMatch/SUN3D, plain folder) or converted scene (metric)",
)
