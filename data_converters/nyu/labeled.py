"""Reading `nyu_depth_v2_labeled.mat` (MATLAB v7.3 = HDF5) one frame at a time, and the official split.

h5py sees every image transposed (N, 3, 640, 480); a plain transpose gives (480, 640, 3) (`rot90`
would mirror it). Strings (scene names, raw file names) are HDF5 object references to uint16 char
arrays. Frames are read lazily so the 2.8 GB file is never loaded whole.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

import h5py
import numpy as np
import scipy.io
from tqdm import tqdm

from data_converters.cache import default_output, fingerprint, invalidate, is_cached
from data_converters.nerfstudio_scene import RGBDFrame, to_nerfstudio_intrinsics, write_scene
from data_converters.nyu import calibration as cal
from data_converters.nyu.raw_reader import NYUFormatError
from data_converters.poses import PoseConfig, estimate_trajectory

LABELED_KEYS = ("images", "depths", "rawDepths", "scenes", "sceneTypes", "rawRgbFilenames", "rawDepthFilenames")


@dataclass
class LabeledFrame:
    """One labeled frame: undistorted RGB and depth registered to it (metres, rawDepths 0 = missing)."""

    index: int
    rgb: np.ndarray  # (480, 640, 3) uint8
    depth: np.ndarray  # (480, 640) float32, holes filled by colourisation
    raw_depth: np.ndarray  # (480, 640) float32, 0 = missing
    scene: str
    scene_type: str
    raw_rgb_filename: str
    raw_depth_filename: str


class LabeledNYU:
    """Lazy reader of the labeled file; use as a context manager so the HDF5 handle is closed."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise NYUFormatError(f"{self.path}: file is missing")
        if not h5py.is_hdf5(self.path):
            raise NYUFormatError(
                f"{self.path}: not an HDF5 / MATLAB v7.3 file, so not nyu_depth_v2_labeled.mat"
                " (splits.mat is read with read_splits)"
            )
        self._file = h5py.File(self.path, "r")
        missing = [k for k in LABELED_KEYS if k not in self._file]
        if missing:
            self._file.close()
            raise NYUFormatError(f"{self.path}: not the NYU labeled file, datasets {missing} are missing")

    def __enter__(self) -> LabeledNYU:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def __len__(self) -> int:
        return int(self._file["images"].shape[0])

    def _strings(self, key: str) -> list[str]:
        refs = self._file[key][()].ravel()
        return ["".join(map(chr, self._file[ref][()].ravel())) for ref in refs]

    @cached_property
    def scenes(self) -> list[str]:
        """Scene name of every frame (e.g. `kitchen_0028b`)."""
        return self._strings("scenes")

    @cached_property
    def scene_types(self) -> list[str]:
        return self._strings("sceneTypes")

    @cached_property
    def raw_rgb_filenames(self) -> list[str]:
        return self._strings("rawRgbFilenames")

    @cached_property
    def raw_depth_filenames(self) -> list[str]:
        return self._strings("rawDepthFilenames")

    def frame(self, i: int) -> LabeledFrame:
        """Read frame i only (three HDF5 slices)."""
        return LabeledFrame(
            index=i,
            rgb=np.ascontiguousarray(self._file["images"][i].T),
            depth=np.ascontiguousarray(self._file["depths"][i].T, dtype=np.float32),
            raw_depth=np.ascontiguousarray(self._file["rawDepths"][i].T, dtype=np.float32),
            scene=self.scenes[i],
            scene_type=self.scene_types[i],
            raw_rgb_filename=self.raw_rgb_filenames[i],
            raw_depth_filename=self.raw_depth_filenames[i],
        )

    def iter_frames(self, indices: Iterable[int] | None = None) -> Iterator[LabeledFrame]:
        """Stream frames one at a time (e.g. for training the prior on the official split)."""
        for i in range(len(self)) if indices is None else indices:
            yield self.frame(int(i))

    def scene_indices(self, scene: str) -> list[int]:
        """Frames of one scene, in capture order (by the raw RGB file's timestamp)."""
        idx = [i for i, s in enumerate(self.scenes) if s == scene]
        if not idx:
            known = sorted(set(self.scenes))
            raise NYUFormatError(
                f"{self.path}: scene {scene!r} does not exist ({len(known)} scenes, e.g. {', '.join(known[:5])})"
            )
        return sorted(idx, key=lambda i: self.raw_rgb_filenames[i].split("/")[-1])


def read_splits(path: Path) -> dict[str, np.ndarray]:
    """Official train/test split as 0-based indices into the 1449 labeled frames."""
    path = Path(path)
    if not path.is_file():
        raise NYUFormatError(f"{path}: file is missing")
    try:
        mat = scipy.io.loadmat(path)
    except (ValueError, NotImplementedError, OSError) as err:
        raise NYUFormatError(f"{path}: not a MATLAB v5 splits file ({err})") from err
    if "trainNdxs" not in mat or "testNdxs" not in mat:
        raise NYUFormatError(f"{path}: no trainNdxs/testNdxs, not the NYU splits.mat")
    return {
        "train": mat["trainNdxs"].ravel().astype(np.int64) - 1,
        "test": mat["testNdxs"].ravel().astype(np.int64) - 1,
    }


def labeled_pose_config() -> PoseConfig:
    """Labeled frames are sparse views: every tracked frame is a keyframe, and any two may close a loop."""
    return PoseConfig(keyframe_translation=0.0, keyframe_rotation_deg=0.0, loop_min_gap=2)


def export_labeled_scene(
    mat_path: Path,
    scene: str,
    out_dir: Path | None = None,
    depth_key: Literal["rawDepths", "depths"] = "rawDepths",
    poses: PoseConfig | None = None,
    progress: bool = True,
) -> Path:
    """Write all labeled frames of `scene`, cropped to the valid area and posed by RGB-D odometry."""
    mat_path = Path(mat_path)
    poses = poses or labeled_pose_config()
    out_dir = Path(out_dir) if out_dir is not None else default_output(mat_path, scene)
    fp = fingerprint(mat_path, {"scene": scene, "depth": depth_key, "poses": asdict(poses)})
    if is_cached(out_dir, fp):
        return out_dir
    with LabeledNYU(mat_path) as labeled:
        frames = [labeled.frame(i) for i in tqdm(labeled.scene_indices(scene), desc="reading", disable=not progress)]
    crop = (cal.CROP_ROWS, cal.CROP_COLS)
    images = [(f.rgb[crop], (f.raw_depth if depth_key == "rawDepths" else f.depth)[crop]) for f in frames]
    K = cal.cropped_rgb_intrinsics()
    height, width = images[0][1].shape
    traj = estimate_trajectory(lambda i: images[i], len(images), K, width, height, config=poses)
    dropped = {frames[i].raw_rgb_filename: reason for i, reason in traj.failed.items()}
    metadata = {
        "source": "NYU Depth V2 labeled",
        "source_path": str(mat_path.resolve()),
        "scene": scene,
        "scene_type": frames[0].scene_type,
        "fingerprint": fp,
        "depth": depth_key,
        "frames_in_scene": len(frames),
        "frames_written": len(traj.c2w),
        "dropped": dropped,
        "odometry": traj.summary(),
        "world": "first camera (the labeled file has no gravity vector)",
        "intrinsics": "undistorted RGB camera, cropped to the valid area; nerfstudio pixel convention",
        "frames": [
            {"name": f"frame_{i:05d}", "labeled_index": frames[i].index, "raw_rgb_file": frames[i].raw_rgb_filename}
            for i in sorted(traj.c2w)
        ],
    }
    invalidate(out_dir)
    return write_scene(
        out_dir,
        to_nerfstudio_intrinsics(K),
        width,
        height,
        (RGBDFrame(*images[i], traj.c2w[i], f"frame_{i:05d}") for i in sorted(traj.c2w)),
        metadata,
    ).parent
