"""Any parsed RGB-D capture (`Capture`) into a posed nerfstudio scene: validate, pose, write once.

Every frame is read and checked before anything is written (unreadable images, all-invalid depth,
a bad given pose: that frame is excluded with a reason; a wrong depth unit: the whole conversion
stops with an error). Given poses are used as they are unless re-estimation is asked for; without
them the project's RGB-D odometry + pose graph estimates them per fragment, each fragment placed in
the given poses' world when there are any. Frames whose odometry fails are excluded, and
`metadata.json` records every exclusion and why. Depth's misalignment with colour is measured from
edges on every capture and, where the layout does not register depth itself, corrected by a
whole-pixel shift (`data_converters.depth_alignment`); `metadata.json` records both.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
from scipy.spatial.transform import Rotation
from tqdm import tqdm

from data_converters.cache import fingerprint, invalidate, is_cached
from data_converters.capture import Capture, CaptureFormatError, CaptureFrame
from data_converters.depth_alignment import estimate_depth_offset, shift_depth
from data_converters.depth_camera import estimate_depth_camera
from data_converters.nerfstudio_scene import RGBDFrame, to_nerfstudio_intrinsics, write_scene
from data_converters.poses import PoseConfig, Trajectory, estimate_trajectory
from data_converters.trajectory_scale import check_trajectory_scale, scaled

LOG = logging.getLogger(__name__)

DepthAlign = Callable[[np.ndarray], np.ndarray] | None
"""What conversion does to every frame's depth (metres) to put it onto colour; None = nothing."""
PLAUSIBLE_MEDIAN_DEPTH_M = (0.1, 20.0)
"""Median valid depth of an indoor / object capture; outside this the depth unit is almost surely wrong."""
COMMON_UNITS = {"millimetres (1e-3)": 1e-3, "TUM 1/5000": 1 / 5000, "0.1 mm (1e-4)": 1e-4, "metres (1)": 1.0}
REGISTERED_BY_LAYOUT = {
    "tum": "TUM's depth is registered to the colour camera by the Kinect's factory calibration (OpenNI)",
    "redwood": "Open3D's reconstruction layout takes registered depth (Redwood: OpenNI registration; ICL-NUIM: "
    "rendered from the colour camera)",
    "scannet": "registered by reprojection through ScanNet's calibrated intrinsics and extrinsics",
    "record3d": "ARKit delivers depth in the colour camera",
}
"""Layouts whose depth is already registered to colour, and by what; with `depth_alignment='auto'` their offset is
measured and recorded but not applied (a shift on top of a calibrated registration would need a reason to trust the
edges over the calibration). 3DMatch/7-Scenes/SUN3D and plain folders give no registration (7-Scenes records depth
and colour with two cameras and ships them as if registered), so 'auto' applies a reliable offset there."""
ONE_SHIFT_HINT = (
    "no one shift explains the edges; if depth was shipped as its own camera saw it (7-Scenes), "
    "--options.depth-alignment camera fits that camera"
)
"""Said where one shift does not fit (edges past the search window, frames disagreeing) and none was applied."""
MIN_APPLIED_OFFSET_PX = 0.5
"""Smallest measured offset that is corrected: below it the whole-pixel shift rounds to zero anyway."""
TRAJECTORY_SCALE_WARNING = 0.05
"""A firm path-scale check further than this from 1 warns (SUN3D fragment 1's given poses: 0.94)."""


@dataclass
class ConvertOptions:
    """How any RGB-D capture is converted."""

    poses: Literal["given", "estimate"] = "given"
    """'given' uses the capture's poses after validation (estimated when it has none); 'estimate' always
    re-estimates them with RGB-D odometry and a pose graph."""
    stride: int = 1
    """Use every n-th frame of each fragment (1 = all)."""
    keyframes_only: bool = False
    """Keep only frames that moved enough since the last kept one (see odometry keyframe thresholds)."""
    odometry: PoseConfig = field(default_factory=lambda: PoseConfig(depth_max=8.0))
    """Odometry settings; depth is trusted to 8 m (not NYU's 6 m) because structured-light captures of
    larger rooms (SUN3D's median depth is 3.6 m) still have valid far walls."""
    max_rotation_error: float = 1e-3
    """Largest |R R^T - I| entry for a given pose to count as a rotation."""
    depth_alignment: Literal["auto", "apply", "measure", "camera", "off"] = "auto"
    """Depth-to-colour misalignment, measured from edges over `alignment_frames` frames: 'apply' shifts depth by
    whole pixels on each axis whose measurement is reliable and at least 0.5 px; 'measure' only records it; 'auto'
    applies it where the layout gives no registration (3DMatch/7-Scenes/SUN3D, plain folders) and measures
    elsewhere; 'camera' fits the camera depth came from (focal ratio, principal point, baseline: `depth_camera`)
    and registers depth with it, for depth shipped unregistered from its own camera (7-Scenes); 'off' skips it.
    metadata.json's `depth_alignment` records the measurement and the decision."""
    alignment_frames: int = 40
    """Frames (spread evenly over the capture) the misalignment is measured on."""
    trajectory_scale: Literal["measure", "apply", "off"] = "measure"
    """Whether the poses agree in scale with the depth (`trajectory_scale.check_trajectory_scale`, 1-3 s
    per sequence): 'measure' records the path factor the depth agrees with best and warns where it firmly differs
    from 1 by more than 5%; 'apply' also rescales each sequence's camera path by it where the check is firm (poses
    off in scale cost a depth-supervised NeRF its colour); 'off' skips it. metadata.json's `trajectory_scale`
    records it."""
    given_intrinsics: Literal["colour", "depth"] = "colour"
    """Which camera the capture's intrinsics describe. 7-Scenes ships none, and the 585 px usually taken for it
    are its depth camera's (its colour camera's are about 525 px). With 'depth' (needs depth_alignment='camera')
    the colour camera's intrinsics are derived from the fitted depth camera and written for training."""


def depth_unit_error(median_m: float, capture: Capture) -> str | None:
    """Why the depth unit looks wrong given the median valid depth in metres, or None if it is plausible."""
    lo, hi = PLAUSIBLE_MEDIAN_DEPTH_M
    if lo <= median_m <= hi:
        return None
    raw = median_m / capture.depth_scale
    fits = [name for name, unit in COMMON_UNITS.items() if lo <= raw * unit <= hi]
    return (
        f"{capture.root}: median valid depth is {median_m:.4g} m (stored value {raw:.4g} x {capture.depth_scale:g} "
        f"m per unit), outside the plausible {lo}-{hi} m; the depth unit looks wrong"
        + (f" - the values fit {' or '.join(fits)}" if fits else "")
    )


def pose_problem(c2w: np.ndarray, max_rotation_error: float) -> str | None:
    """Why a given camera-to-world matrix is not a rigid transform, or None."""
    if c2w.shape != (4, 4):
        return f"pose has shape {c2w.shape}, not 4x4"
    if not np.isfinite(c2w).all():
        return "pose has non-finite entries (tracking lost)"
    if not np.allclose(c2w[3], [0, 0, 0, 1], atol=1e-6):
        return f"pose's last row is {c2w[3].tolist()}, not [0, 0, 0, 1]"
    R = c2w[:3, :3]
    if np.abs(R @ R.T - np.eye(3)).max() > max_rotation_error or np.linalg.det(R) < 0:
        return "pose's rotation block is not a rotation (not orthonormal or a reflection)"
    return None


@dataclass
class _Checked:
    """Frames that passed reading and validation, and the reasons others did not."""

    frames: list[CaptureFrame]
    dropped: dict[str, str]
    median_depth_m: float


def _check_frames(capture: Capture, frames: list[CaptureFrame], progress: bool) -> _Checked:
    """Read every frame once: unreadable / wrong-size / empty-depth frames are dropped with a reason."""
    usable, dropped, medians = [], {}, []
    for f in tqdm(frames, desc="checking frames", disable=not progress):
        try:
            capture.load_rgb(f)
            depth = capture.load_depth_m(f)
        except CaptureFormatError as err:
            dropped[f.name] = f"unreadable: {err}"
            LOG.warning("excluding frame %s: %s", f.name, err)
            continue
        valid = depth[depth > 0]
        if valid.size == 0:
            dropped[f.name] = f"no valid depth: every pixel of {f.depth_path} is invalid"
            LOG.warning("excluding frame %s: all depth invalid", f.name)
            continue
        medians.append(float(np.median(valid)))
        usable.append(f)
    if not usable:
        example = next(iter(dropped.values()), "no frames")
        raise CaptureFormatError(f"{capture.root}: none of {len(frames)} frames is usable, e.g. {example}")
    if len(usable) > 1 and len(dropped) > len(frames) // 2:
        raise CaptureFormatError(
            f"{capture.root}: {len(dropped)} of {len(frames)} frames are unusable (e.g. {next(iter(dropped.values()))})"
            "; this is not a single bad frame, refusing to convert"
        )
    median = float(np.median(medians))
    problem = depth_unit_error(median, capture)
    if problem:
        raise CaptureFormatError(problem)
    return _Checked(usable, dropped, median)


def _estimate_group(
    capture: Capture, frames: list[CaptureFrame], config: PoseConfig, progress: bool, align: DepthAlign = None
) -> Trajectory:
    with tqdm(total=len(frames), desc=f"odometry {frames[0].group or ''}".strip(), disable=not progress) as bar:
        return estimate_trajectory(
            lambda i: (capture.load_rgb(frames[i]), _aligned(capture.load_depth_m(frames[i]), align)),
            len(frames),
            capture.K,
            capture.width,
            capture.height,
            config=config,
            progress=bar.update,
        )


def anchor_to_given(est: dict[str, np.ndarray], given: dict[str, np.ndarray]) -> np.ndarray:
    """Rigid transform placing an estimated fragment in the given poses' world: rotation averaged over
    frames (stable even for a straight camera path, unlike a fit to camera centres), then the mean offset."""
    names = list(est)
    rot = Rotation.from_matrix([given[n][:3, :3] @ est[n][:3, :3].T for n in names]).mean().as_matrix()
    T = np.eye(4)
    T[:3, :3] = rot
    T[:3, 3] = np.mean([given[n][:3, 3] - rot @ est[n][:3, 3] for n in names], axis=0)
    return T


def _estimate_poses(
    capture: Capture,
    frames: list[CaptureFrame],
    options: ConvertOptions,
    dropped: dict[str, str],
    progress: bool,
    align: DepthAlign = None,
) -> tuple[dict[str, np.ndarray], dict]:
    """Odometry per fragment (fragments are separate recordings, tracking across them would fail).

    With given poses, each fragment is placed in their world by `anchor_to_given` (fitted to the frames
    whose given pose is valid); without them only the first fragment can be placed, and the others are
    excluded with the reason (global registration of partially overlapping fragments is not reliable
    enough to trust silently).
    """
    poses: dict[str, np.ndarray] = {}
    summary: dict = {}
    for k, group in enumerate(dict.fromkeys(f.group for f in frames)):
        members = [f for f in frames if f.group == group]
        traj = _estimate_group(capture, members, options.odometry, progress, align)
        for i, reason in traj.failed.items():
            dropped[members[i].name] = f"odometry failed: {reason}"
        info = traj.summary()
        summary[group or "sequence"] = info
        valid_given = {f.name: f.c2w for f in members if f.c2w is not None and not pose_problem(f.c2w, 1e-3)}
        anchors = {members[i].name: c for i, c in traj.c2w.items() if members[i].name in valid_given}
        if anchors:
            to_world = anchor_to_given(anchors, valid_given)
        elif k == 0:
            to_world = np.eye(4)
        else:
            reason = f"fragment '{group}': no valid given poses to place it in the first fragment's world"
            LOG.warning("excluding %d frames: %s", len(traj.c2w), reason)
            dropped.update({members[i].name: reason for i in traj.c2w})
            continue
        poses.update({members[i].name: to_world @ c for i, c in traj.c2w.items()})
        info["fitness"] = {members[i].name: traj.fitness[i] for i in traj.fitness}
    return poses, summary


def _keyframes(names: list[str], poses: dict[str, np.ndarray], config: PoseConfig) -> list[str]:
    """Frames that moved past the odometry keyframe thresholds since the last kept frame."""
    kept = [names[0]]
    for name in names[1:]:
        rel = np.linalg.inv(poses[kept[-1]]) @ poses[name]
        angle = np.rad2deg(np.arccos(np.clip((np.trace(rel[:3, :3]) - 1) / 2, -1, 1)))
        if np.linalg.norm(rel[:3, 3]) > config.keyframe_translation or angle > config.keyframe_rotation_deg:
            kept.append(name)
    return kept


class _Alignment(NamedTuple):
    record: dict
    """metadata.json's `depth_alignment`."""
    align: DepthAlign
    K: np.ndarray
    """The colour camera's intrinsics to train with (the capture's, unless they were the depth camera's)."""


def _depth_alignment(capture: Capture, frames: list[CaptureFrame], options: ConvertOptions) -> _Alignment:
    """Measure depth's offset from colour on up to `options.alignment_frames` of `frames` and decide whether to
    correct it: the record, what to do to every frame's depth (None = nothing) and the colour intrinsics."""
    mode = options.depth_alignment
    if mode == "off":
        record = {"mode": mode, "applied_shift": [0, 0], "decision": "not measured (depth_alignment='off')"}
        return _Alignment(record, None, capture.K)
    registered = REGISTERED_BY_LAYOUT.get(capture.layout)
    picks = np.unique(np.linspace(0, len(frames) - 1, min(options.alignment_frames, len(frames))).round().astype(int))
    if mode == "camera":
        return _depth_camera(capture, [frames[i] for i in picks], options.given_intrinsics)
    offset = estimate_depth_offset((capture.load_rgb(frames[i]), capture.load_depth_m(frames[i])) for i in picks)
    shift = offset.correction(MIN_APPLIED_OFFSET_PX)
    record = {
        "mode": mode,
        "registration": registered or f"none given by the {capture.layout} layout",
        "convention": "depth content lay (dx, dy) px right of / below the colour's; applied_shift moved it",
        **offset.as_dict(),
    }
    if mode == "measure" or (mode == "auto" and registered is not None):
        why = "depth_alignment='measure'" if mode == "measure" else "the layout registers depth itself"
        if shift != (0, 0):
            LOG.warning(
                "%s: depth lies (%.1f, %.1f) px from colour, reliably; not corrected because %s "
                "(--options.depth-alignment apply would)",
                capture.root,
                offset.dx,
                offset.dy,
                why,
            )
        shift = (0, 0)
    elif shift == (0, 0):
        why = f"no axis is both reliable and at least {MIN_APPLIED_OFFSET_PX} px off"
        if "window's edge" in offset.reason or "frames disagree" in offset.reason:
            why += f"; {ONE_SHIFT_HINT}"
            LOG.warning("%s: %s (%s)", capture.root, ONE_SHIFT_HINT, offset.reason)
    else:
        why = ""
        LOG.info("%s: depth moved by %s px onto colour (%s)", capture.root, shift, offset.reason)
    record.update(
        applied_shift=list(shift),
        decision=f"applied: depth moved by {list(shift)} px" if shift != (0, 0) else f"not applied: {why}",
    )
    return _Alignment(record, (lambda depth: shift_depth(depth, *shift)) if shift != (0, 0) else None, capture.K)


def _depth_camera(capture: Capture, picks: list[CaptureFrame], given: str) -> _Alignment:
    """depth_alignment='camera': fit the camera depth came from on `picks` and register every frame's depth with it
    (asked for, so applied even when the fit is unreliable; the record and a warning say so). With `given` 'depth'
    the capture's intrinsics are the depth camera's, and the colour camera's follow from the fit."""
    if (capture.width, capture.height) != np.shape(capture.load_depth_m(picks[0]))[::-1]:
        raise CaptureFormatError(
            f"{capture.root}: depth_alignment='camera' needs depth of the colour's size "
            f"({capture.width}x{capture.height}); {picks[0].name}'s depth differs"
        )
    camera = estimate_depth_camera(((capture.load_rgb(f), capture.load_depth_m(f)) for f in picks), capture.K)
    if not camera.reliable:
        LOG.warning(
            "%s: the depth camera fit is unreliable (%s); registering with it as asked", capture.root, camera.reason
        )
    K = camera.colour_intrinsics(capture.K) if given == "depth" else capture.K
    record = {
        "mode": "camera",
        "registration": f"depth registered with the fitted camera (frames measured: {len(picks)})",
        "camera": camera.as_dict(),
        "given_intrinsics": given,
        "colour_intrinsics": np.round(K, 3).tolist(),
        "applied_shift": [0, 0],
        "decision": "applied: depth registered with the fitted camera",
    }
    return _Alignment(record, lambda depth: camera.register(depth, capture.K), K)


def _trajectory_scale(
    capture: Capture, frames: list[CaptureFrame], poses: dict[str, np.ndarray], mode: str, align: DepthAlign
) -> dict:
    """Check each sequence's path scale against its depth; with mode 'apply', rescale `poses` in place where the
    check is firm. Returns metadata.json's `trajectory_scale`, per sequence."""
    if mode == "off":
        return {"mode": mode}
    record: dict = {"mode": mode}
    for group in capture.groups:
        members = [f for f in frames if f.group == group]
        if len(members) < 2:
            continue
        c2w = np.stack([poses[f.name] for f in members])
        check = check_trajectory_scale(
            capture.K, lambda i, members=members: _aligned(capture.load_depth_m(members[i]), align), c2w
        )
        off = check.firm and abs(check.scale - 1) > TRAJECTORY_SCALE_WARNING
        applied = mode == "apply" and check.firm
        if applied:
            poses.update(zip([f.name for f in members], scaled(c2w, check.scale), strict=True))
        elif off:
            LOG.warning(
                "%s%s: the depth agrees best with the camera path scaled by %.3f (%s): the poses look off in scale "
                "(--options.trajectory-scale apply rescales them)",
                capture.root,
                f" {group}" if group else "",
                check.scale,
                check.reason,
            )
        record[group or "sequence"] = {
            **check.as_dict(),
            "decision": f"applied: path scaled by {check.scale:.4f}" if applied else "measured only",
        }
    return record


def _aligned(depth: np.ndarray, align: DepthAlign) -> np.ndarray:
    return depth if align is None else align(depth)


def capture_sources(capture: Capture) -> list[Path]:
    """Every file the conversion reads (for the cache fingerprint)."""
    return [capture.root, *(p for f in capture.frames for p in (f.rgb_path, f.depth_path))]


def convert_capture(capture: Capture, out: Path, options: ConvertOptions | None = None, progress: bool = True) -> Path:
    """Write `capture` as a nerfstudio RGB-D scene in `out` (reused when converted identically); returns `out`."""
    options = options or ConvertOptions()
    out = Path(out)
    if options.stride < 1:
        raise ValueError(f"stride {options.stride}: must be >= 1")
    if options.alignment_frames < 1:
        raise ValueError(f"alignment_frames {options.alignment_frames}: must be >= 1")
    if options.given_intrinsics == "depth" and options.depth_alignment != "camera":
        raise ValueError(
            "given_intrinsics='depth' needs depth_alignment='camera': the colour camera's intrinsics come from "
            f"the fitted depth camera (depth_alignment is {options.depth_alignment!r})"
        )
    request = {
        "options": asdict(options),
        "layout": capture.layout,
        "K": capture.K.tolist(),
        "depth_scale": capture.depth_scale,
        "poses": [None if f.c2w is None else f.c2w.tolist() for f in capture.frames],
    }
    fp = fingerprint(capture_sources(capture), request)
    if is_cached(out, fp):
        return out
    frames = [f for g in capture.groups for f in [f for f in capture.frames if f.group == g][:: options.stride]]
    checked = _check_frames(capture, frames, progress)
    dropped = {**capture.skipped, **checked.dropped}
    frames = checked.frames
    # Before odometry, which matches colour and depth too.
    alignment, align, K = _depth_alignment(capture, frames, options)
    capture = replace(capture, K=K)
    estimate = options.poses == "estimate" or not capture.has_poses
    if estimate:
        poses, odometry = _estimate_poses(capture, frames, options, dropped, progress, align)
        pose_source = "estimated (RGB-D odometry + pose graph per fragment)" + (
            ", each fragment rigidly placed in the given poses' world" if capture.has_poses else ""
        )
    else:
        poses, odometry = {}, None
        for f in frames:
            problem = pose_problem(f.c2w, options.max_rotation_error)
            if problem:
                dropped[f.name] = f"invalid given pose: {problem}"
                LOG.warning("excluding frame %s: %s", f.name, problem)
            else:
                poses[f.name] = f.c2w
        pose_source = f"given by the capture ({capture.layout})"
    names = [f.name for f in frames if f.name in poses]
    if not names:
        raise CaptureFormatError(f"{capture.root}: no frame has a usable pose, e.g. {next(iter(dropped.values()))}")
    if options.keyframes_only:
        group_of = {f.name: f.group for f in frames}
        per_group = [[n for n in names if group_of[n] == g] for g in capture.groups]
        names = [n for members in per_group if members for n in _keyframes(members, poses, options.odometry)]
    by_name = {f.name: f for f in frames}
    written = [by_name[n] for n in names]
    path_scale = _trajectory_scale(capture, written, poses, options.trajectory_scale, align)
    metadata = {
        "source": f"RGB-D capture, {capture.layout} layout",
        "source_path": str(Path(capture.root).resolve()),
        "fingerprint": fp,
        "options": asdict(options),
        "poses": pose_source,
        "depth_unit_m": capture.depth_scale,
        "median_depth_m": checked.median_depth_m,
        "reader_notes": capture.notes,
        "frames_in_capture": len(capture.frames),
        "frames_written": len(written),
        "dropped": dropped,
        "odometry": odometry,
        "depth_alignment": alignment,
        "trajectory_scale": path_scale,
        "world": "the capture's world frame" if capture.has_poses else "first posed camera",
        "intrinsics": "nerfstudio pixel convention (pixel centres at +0.5)",
        "frames": [
            {"name": f"frame_{k:05d}", "source": f.name, "group": f.group, "timestamp": f.timestamp}
            for k, f in enumerate(written)
        ],
    }
    invalidate(out)
    write_scene(
        out,
        to_nerfstudio_intrinsics(capture.K),
        capture.width,
        capture.height,
        (
            RGBDFrame(capture.load_rgb(f), _aligned(capture.load_depth_m(f), align), poses[f.name], f"frame_{k:05d}")
            for k, f in enumerate(tqdm(written, desc="writing", disable=not progress))
        ),
        metadata,
    )
    return out
