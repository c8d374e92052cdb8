"""`diffnerf-convert <layout|auto> ...`: any RGB-D capture into a posed nerfstudio scene.

`diffnerf-convert-nyu raw|labeled` is kept as the older spelling of the two NYU subcommands. The
synthetic-data generators' commands (`diffnerf-make-demo`, `diffnerf-make-nyu-raw`, `diffnerf-make-corpus`)
live here too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import tyro

from data_converters.cache import default_output
from data_converters.capture import Capture, CaptureFormatError
from data_converters.convert import ConvertOptions, convert_capture
from data_converters.layouts.plain import read_plain
from data_converters.layouts.record3d import read_record3d
from data_converters.layouts.redwood import read_redwood
from data_converters.layouts.scannet import read_scannet
from data_converters.layouts.threedmatch import read_threedmatch
from data_converters.layouts.tum import read_tum
from data_converters.nyu.convert import RawOptions, convert_raw
from data_converters.nyu.labeled import export_labeled_scene, labeled_pose_config
from data_converters.poses import PoseConfig
from data_converters.resolve import capture_name, ensure_nerfstudio_scene
from data_converters.synthetic.corpus import Split, write_corpus
from data_converters.synthetic.demo_scene import make_demo_scene
from data_converters.synthetic.kinect_noise import KinectNoiseModel
from data_converters.synthetic.nyu_raw_writer import NYURawSpec, write_nyu_raw_scene


@dataclass
class _CaptureCommand:
    """Shared by the generic layouts: where to write and how to convert."""

    root: tyro.conf.Positional[Path]
    out: Path | None = None
    """Output folder (default: <root>_nerfstudio next to the capture)."""
    options: ConvertOptions = field(default_factory=ConvertOptions)

    def read(self) -> Capture:
        """The layout's reader (each subclass names its own)."""
        raise NotImplementedError

    def main(self) -> None:
        out = self.out or default_output(self.root, capture_name(self.root))
        print(f"wrote {convert_capture(self.read(), out, self.options)}")


@dataclass
class Auto(_CaptureCommand):
    """Detect the layout (any of the other subcommands) and convert with its defaults."""

    depth_unit: float = 1e-3
    """Metres per stored depth value, used only when the folder turns out to be a plain one."""

    def main(self) -> None:
        scene = ensure_nerfstudio_scene(self.root, options=self.options, depth_unit=self.depth_unit, out=self.out)
        print(f"wrote {scene}")


@dataclass
class Tum(_CaptureCommand):
    """TUM RGB-D: rgb.txt, depth.txt (value / 5000 = metres), optional groundtruth.txt."""

    max_dt: float = 0.02
    """Seconds; a depth frame without an RGB frame this close in time is skipped."""

    def read(self) -> Capture:
        return read_tum(self.root, max_dt=self.max_dt)


@dataclass
class Redwood(_CaptureCommand):
    """Redwood / ICL-NUIM / Open3D: color/, depth/ (millimetres), camera_*.json, optional .log trajectory."""

    def read(self) -> Capture:
        return read_redwood(self.root)


@dataclass
class Threedmatch(_CaptureCommand):
    """3DMatch / 7-Scenes / SUN3D: frame-NNNNNN.{color.png,depth.png,pose.txt}, camera-intrinsics.txt."""

    def read(self) -> Capture:
        return read_threedmatch(self.root)


@dataclass
class Record3d(_CaptureCommand):
    """Record3D "EXR + JPG sequence" export: metadata.json, rgb/<i>.jpg, depth/<i>.exr (metres, at depth size)."""

    def read(self) -> Capture:
        return read_record3d(self.root)


@dataclass
class Scannet(_CaptureCommand):
    """ScanNet: a .sens file (or a scan folder holding one), or its exporter's color/, depth/, pose/, intrinsic/."""

    def read(self) -> Capture:
        return read_scannet(self.root)


@dataclass
class Plain(_CaptureCommand):
    """A plain folder: rgb/ (or color/), depth/, an intrinsics file; poses are estimated."""

    depth_unit: float = 1e-3
    """Metres per stored depth value (1e-3 millimetres, 2e-4 TUM-style 1/5000, 1 metres)."""
    intrinsics: Path | None = None
    """Intrinsics file (default: intrinsics.txt / camera-intrinsics.txt / K.txt / intrinsics.json in the root)."""

    def read(self) -> Capture:
        return read_plain(self.root, depth_unit=self.depth_unit, intrinsics=self.intrinsics)


@dataclass
class NyuRaw:
    """Convert a raw NYU scene folder (r-*.ppm, d-*.pgm, a-*.dump) into a posed nerfstudio scene."""

    scene: tyro.conf.Positional[Path]
    out: Path | None = None
    """Output folder (default: <scene>_nerfstudio next to the scene folder)."""
    options: RawOptions = field(default_factory=RawOptions)

    def main(self) -> None:
        print(f"wrote {convert_raw(self.scene, self.out, self.options)}")


@dataclass
class NyuLabeled:
    """Export the labeled frames of one scene of nyu_depth_v2_labeled.mat as a (few-view) posed scene."""

    mat: tyro.conf.Positional[Path]
    scene: Annotated[str, tyro.conf.arg(aliases=["-s"])]
    """Scene name, e.g. kitchen_0028b."""
    out: Path | None = None
    """Output folder (default: <scene>_nerfstudio next to the .mat file)."""
    depth: Literal["rawDepths", "depths"] = "rawDepths"
    """rawDepths keeps sensor holes (0); depths is hole-filled by colourisation."""
    poses: PoseConfig = field(default_factory=labeled_pose_config)

    def main(self) -> None:
        print(f"wrote {export_labeled_scene(self.mat, self.scene, self.out, self.depth, self.poses)}")


@dataclass
class MakeDemo:
    """Render the built-in demo room as a nerfstudio RGB-D scene."""

    out: Path = Path("outputs/demo_scene")
    num_frames: int = 40
    width: int = 160
    height: int = 120
    seed: int = 0
    kinect_noise: bool = False
    """Store Kinect-corrupted depth (as the sensor would) instead of exact depth."""

    def main(self) -> None:
        noise = KinectNoiseModel.registered_to_rgb() if self.kinect_noise else None
        path = make_demo_scene(self.out, self.num_frames, self.width, self.height, self.seed, noise)
        print(f"wrote {path}")


@dataclass
class MakeNYURaw:
    """Write a synthetic NYU Depth V2 raw scene folder (and its ground truth beside it)."""

    out: Path = Path("outputs/synthetic_nyu_raw/living_room_0001")
    spec: NYURawSpec = field(default_factory=NYURawSpec)

    def main(self) -> None:
        gt = write_nyu_raw_scene(self.out, self.spec)
        print(
            f"wrote {gt.scene_dir} ({len(gt.depth_files)} good frames, {len(gt.dropped_depth_files)} without RGB, "
            f"{len(gt.invalid_depth_files)} all-invalid); ground truth in {gt.gt_dir}"
        )


@dataclass
class MakeCorpus:
    """Render the procedural indoor corpus (train or held-out rooms) to .npz shards with exact and Kinect depth."""

    out: Path = Path("outputs/corpus/train")
    num_rooms: int = 100
    views_per_room: int = 10
    width: int = 160
    height: int = 120
    seed: int = 0
    split: Split = "train"
    """"heldout" rooms come from a seed stream disjoint from "train": benchmark on them."""
    workers: int = 1
    """Processes rendering rooms in parallel (one core each)."""

    def main(self) -> None:
        path = write_corpus(
            self.out, self.num_rooms, self.views_per_room, self.width, self.height, self.seed, self.split, self.workers
        )
        print(f"wrote {self.num_rooms * self.views_per_room} frames to {path}")


COMMANDS = {
    "auto": Auto,
    "tum": Tum,
    "redwood": Redwood,
    "threedmatch": Threedmatch,
    "record3d": Record3d,
    "scannet": Scannet,
    "plain": Plain,
    "nyu-raw": NyuRaw,
    "nyu-labeled": NyuLabeled,
}


def _run(commands: dict[str, type]) -> None:
    """Parse and run; bad input ends with its one-line message (it names the file), not a traceback."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    command = tyro.extras.subcommand_cli_from_dict(commands)
    try:
        command.main()
    except CaptureFormatError as err:
        raise SystemExit(f"error: {err}") from None


def entrypoint() -> None:
    """`diffnerf-convert <layout|auto> ...`"""
    _run(COMMANDS)


def nyu_entrypoint() -> None:
    """`diffnerf-convert-nyu raw|labeled ...` (older alias of the NYU subcommands)."""
    _run({"raw": NyuRaw, "labeled": NyuLabeled})


def make_demo_entrypoint() -> None:
    """`diffnerf-make-demo`"""
    tyro.cli(MakeDemo).main()


def make_nyu_raw_entrypoint() -> None:
    """`diffnerf-make-nyu-raw`"""
    tyro.cli(MakeNYURaw).main()


def make_corpus_entrypoint() -> None:
    """`diffnerf-make-corpus`"""
    tyro.cli(MakeCorpus).main()


if __name__ == "__main__":
    entrypoint()
