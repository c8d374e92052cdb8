"""Camera poses for an RGB-D sequence: Open3D RGB-D odometry, keyframes, loop closures, pose graph.

Every frame is tracked against the previous tracked frame at a reduced resolution: each edge starts from no
motion or from a feature-based guess (ORB + PnP RANSAC on the depth), whichever explains the pair better, is
refined densely by the hybrid, colour and depth (point-to-plane ICP) terms, and keeps the estimate with the
lowest photometric + geometric residual, optionally favouring the hybrid one by a margin (`pose_edges.py`). A
frame becomes a keyframe once the composed motion since the last one passes a threshold, so pose-graph nodes
and loop-closure searches stay few for long 30 Hz sequences. Keyframes that view the same place again are
linked by loop-closure edges, computed at full resolution from the tracked estimate (coarse to fine), and the
graph is optimised globally. Gravity measured by an accelerometer (where the sensor has one, as NYU's Kinect)
then levels the world so that +z is up. Frames whose odometry fails are returned as failures with a reason,
never given a guessed pose.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import cv2
import numpy as np
import open3d as o3d
from scipy.spatial.transform import Rotation

from data_converters.pose_edges import (
    choose_estimate,
    depth_cloud,
    edge_cost,
    feature_guess,
    icp_point_to_plane,
    information_matrix,
)
from data_converters.pose_interpolation import interpolate_pose

LOG = logging.getLogger(__name__)
OdometryTerm = Literal["colour", "hybrid", "depth"]
ICP_VOXEL_M = 0.04
"""Voxel of the point clouds the depth term (point-to-plane ICP) aligns: about 3 pixels at 3.5 m and half scale."""
FrameLoader = Callable[[int], tuple[np.ndarray, np.ndarray]]
"""Returns (RGB uint8 HxWx3, depth metres HxW, 0 = invalid) of frame i."""


@dataclass
class PoseConfig:
    """Tuning of pose estimation; defaults suit hand-held Kinect sequences."""

    scale: float = 0.5
    """Resolution factor for frame-to-frame tracking (0.5 halves width and height); poses are
    resolution-independent."""
    loop_scale: float = 1.0
    """Resolution factor for loop-closure odometry, which starts from the tracked estimate (coarse to fine);
    loop edges are few, so full resolution costs little."""
    keyframe_translation: float = 0.05
    """Metres of motion since the last keyframe that make a frame a keyframe."""
    keyframe_rotation_deg: float = 5.0
    min_fitness: float = 0.3
    """Odometry is accepted when this fraction of valid source pixels lands on target depth within
    depth-diff-max."""
    terms: tuple[OdometryTerm, ...] = ("hybrid", "colour", "depth")
    """Dense odometry terms tried on every edge, the preferred one first (hybrid: Open3D's photometric + depth
    term; colour: its photometric term; depth: point-to-plane ICP); see `switch_margin`."""
    switch_margin: float = 0.0
    """The first of `terms` is preferred: another term's estimate replaces it only when its residual is lower
    by more than this fraction (0, the default, keeps the lowest residual). A margin helps where the depth
    terms suit the sensor: on a synthetic NYU development sequence 0.05 cut ATE from 0.55 to 0.38 cm
    (`benchmarks/results/pose_term_margin.md`); on ICL-NUIM the colour term is needed (0.07 cm at 0, 0.27 at
    0.05, 0.40 with hybrid only), so the default stays 0."""
    feature_init: bool = True
    """Also consider a first guess from ORB matches + PnP RANSAC on the depth, for frames far apart."""
    feature_min_inliers: int = 25
    depth_min: float = 0.5
    depth_max: float = 6.0
    depth_diff_max: float = 0.07
    loop_radius: float = 0.6
    """Keyframes whose cameras are this close (metres) and look alike are loop-closure candidates."""
    loop_max_angle_deg: float = 30.0
    loop_min_gap: int = 4
    """Keyframes closer than this in keyframe index are already linked by odometry."""
    loop_max_per_keyframe: int = 2
    loop_max_correction: float = 0.1
    """A loop closure that moves the camera more than this (metres) from the odometry estimate is rejected."""


@dataclass
class Trajectory:
    """Estimated OpenCV camera-to-world poses (z up when levelled) and how they were obtained."""

    c2w: dict[int, np.ndarray] = field(default_factory=dict)
    keyframes: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    fitness: dict[int, float] = field(default_factory=dict)
    loop_closures: list[tuple[int, int]] = field(default_factory=list)
    levelled: bool = False
    terms: dict[int, str] = field(default_factory=dict)
    """Frame -> the odometry term whose estimate its tracking edge kept ("+features" when guided)."""

    def summary(self) -> dict:
        """Statistics for the scene metadata."""
        fit = np.array(list(self.fitness.values()))
        return {
            "posed_frames": len(self.c2w),
            "keyframes": len(self.keyframes),
            "odometry_failed": {str(k): v for k, v in self.failed.items()},
            "fitness_mean": float(fit.mean()) if fit.size else None,
            "fitness_min": float(fit.min()) if fit.size else None,
            "loop_closures": len(self.loop_closures),
            "tracking_terms": {t: sum(v == t for v in self.terms.values()) for t in sorted(set(self.terms.values()))},
            "levelled_by_accelerometer": self.levelled,
        }


@dataclass
class _Odometry:
    """One accepted odometry result: `trans` maps source-camera points into the target camera."""

    trans: np.ndarray
    info: np.ndarray
    fitness: float
    term: OdometryTerm
    guided: bool
    """Whether the dense terms started from the feature-based guess."""


class PoseEstimator:
    """Runs Open3D odometry at a reduced resolution with one intrinsics object and option set."""

    def __init__(self, K: np.ndarray, width: int, height: int, config: PoseConfig) -> None:
        self.config = config
        self.size = (max(1, round(width * config.scale)), max(1, round(height * config.scale)))
        sx, sy = self.size[0] / width, self.size[1] / height
        # Scale about the pixel corner: OpenCV centres sit at integers, so c' = (c + 0.5) * s - 0.5.
        self.intrinsic = o3d.camera.PinholeCameraIntrinsic(
            *self.size, K[0, 0] * sx, K[1, 1] * sy, (K[0, 2] + 0.5) * sx - 0.5, (K[1, 2] + 0.5) * sy - 0.5
        )
        self.option = o3d.pipelines.odometry.OdometryOption(
            depth_diff_max=config.depth_diff_max, depth_min=config.depth_min, depth_max=config.depth_max
        )
        self.K = np.asarray(self.intrinsic.intrinsic_matrix)
        self._clouds: list[tuple[o3d.geometry.RGBDImage, o3d.geometry.PointCloud]] = []
        self.jacobians = {
            "colour": o3d.pipelines.odometry.RGBDOdometryJacobianFromColorTerm(),
            "hybrid": o3d.pipelines.odometry.RGBDOdometryJacobianFromHybridTerm(),
        }

    def rgbd(self, rgb: np.ndarray, depth: np.ndarray) -> o3d.geometry.RGBDImage:
        """Downsampled Open3D RGB-D image (area-averaged colour, nearest depth so edges stay sharp)."""
        if self.size != (rgb.shape[1], rgb.shape[0]):
            rgb = cv2.resize(rgb, self.size, interpolation=cv2.INTER_AREA)
            depth = cv2.resize(depth, self.size, interpolation=cv2.INTER_NEAREST)
        return o3d.geometry.RGBDImage.create_from_color_and_depth(
            o3d.geometry.Image(np.ascontiguousarray(rgb)),
            o3d.geometry.Image(np.ascontiguousarray(depth, dtype=np.float32)),
            depth_scale=1.0,
            depth_trunc=self.config.depth_max,
            convert_rgb_to_intensity=True,
        )

    def cloud(self, image: o3d.geometry.RGBDImage) -> o3d.geometry.PointCloud:
        """The image's `depth_cloud` for ICP, kept for the last two images (each frame is a source, then a target)."""
        for kept, cloud in self._clouds:
            if kept is image:
                return cloud
        cloud = depth_cloud(np.asarray(image.depth), self.K, ICP_VOXEL_M)
        self._clouds = [*self._clouds[-1:], (image, cloud)]
        return cloud

    def odometry(
        self, source: o3d.geometry.RGBDImage, target: o3d.geometry.RGBDImage, init: np.ndarray, search: bool = False
    ) -> _Odometry | str:
        """The accepted estimate of the transform taking source-camera points into the target camera, or the
        reason none was accepted. `search` also tries a feature-based first guess (frames far apart)."""
        config = self.config
        src_grey, tgt_grey = np.asarray(source.color), np.asarray(target.color)
        src_depth, tgt_depth = np.asarray(source.depth), np.asarray(target.depth)
        if not (src_depth > 0).any():
            return "no valid depth"

        def cost(T: np.ndarray) -> tuple[float, float]:
            return edge_cost(src_grey, src_depth, tgt_grey, tgt_depth, self.K, T, config.depth_diff_max)

        start, guided = init, False
        if search and config.feature_init:
            as_bytes = [np.round(g * 255).astype(np.uint8) for g in (src_grey, tgt_grey)]
            guess = feature_guess(as_bytes[0], src_depth, as_bytes[1], self.K, min_inliers=config.feature_min_inliers)
            if guess is not None and cost(guess[0])[0] < cost(init)[0]:
                start, guided = guess[0], True
        estimates: list[tuple[OdometryTerm, np.ndarray]] = []
        for term in config.terms:
            if term == "depth":
                trans = icp_point_to_plane(self.cloud(source), self.cloud(target), start, config.depth_diff_max)
                estimates.append((term, trans))
                continue
            ok, trans, _ = o3d.pipelines.odometry.compute_rgbd_odometry(
                source, target, self.intrinsic, start, self.jacobians[term], self.option
            )
            if ok:
                estimates.append((term, np.asarray(trans)))
        if not estimates:
            return "odometry did not converge"
        scored = [(cost(T), term, T) for term, T in estimates]
        (_, fitness), term, trans = scored[
            choose_estimate(
                [c for (c, _), _, _ in scored], preferred=scored[0][1] == config.terms[0], margin=config.switch_margin
            )
        ]
        if fitness < config.min_fitness:
            return f"odometry fitness {fitness:.2f} < {config.min_fitness}"
        info = information_matrix(src_depth, tgt_depth, self.K, trans, config.depth_diff_max)
        return _Odometry(trans, info, fitness, term, guided)


def motion_size(T: np.ndarray) -> tuple[float, float]:
    """Translation (metres) and rotation (degrees) of a rigid transform."""
    return float(np.linalg.norm(T[:3, 3])), float(np.rad2deg(Rotation.from_matrix(T[:3, :3]).magnitude()))


def estimate_trajectory(
    load: FrameLoader,
    num_frames: int,
    K: np.ndarray,
    width: int,
    height: int,
    up: Sequence[np.ndarray | None] | None = None,
    config: PoseConfig | None = None,
    progress: Callable[[], None] | None = None,
) -> Trajectory:
    """Track, close loops, optimise and level; `up[i]` is frame i's measured up direction in camera axes
    (an accelerometer reading at rest), None where unknown.

    Each frame is tracked against the previous tracked frame, and keyframe-to-keyframe edges are the
    composed frame-to-frame motions: odometry across many frames at once (a frame against an old
    keyframe) has less overlap and slides along the weakly constrained directions of distant, mostly
    planar indoor scenes (benchmarks/results/capture_conversion.md)."""
    config = config or PoseConfig()
    track = PoseEstimator(K, width, height, config)
    # Loop edges start from the tracked estimate, inside every term's basin: one term (hybrid) suffices there.
    loop = PoseEstimator(K, width, height, replace(config, scale=config.loop_scale, terms=("hybrid",)))
    traj = Trajectory()
    graph = o3d.pipelines.registration.PoseGraph()
    node_of: dict[int, int] = {}
    images: dict[int, o3d.geometry.RGBDImage] = {}  # keyframes at the loop-closure resolution
    relative: dict[int, tuple[int, np.ndarray]] = {}  # frame -> (keyframe, frame-to-keyframe transform)
    following: dict[int, tuple[int, np.ndarray]] = {}  # keyframe -> (next keyframe, next-to-this transform)
    # Covariance of the motion since the last keyframe: the frame-to-frame steps are independent and small
    # (below the keyframe thresholds), so their covariances add to first order.
    covariance = np.zeros((6, 6))

    def add_keyframe(i: int, rgb: np.ndarray, depth: np.ndarray, c2w: np.ndarray) -> None:
        node_of[i] = len(graph.nodes)
        graph.nodes.append(o3d.pipelines.registration.PoseGraphNode(c2w))
        traj.keyframes.append(i)
        images[i] = loop.rgbd(rgb, depth)
        relative[i] = (i, np.eye(4))

    last: tuple[int, o3d.geometry.RGBDImage] | None = None  # last tracked frame
    for i in range(num_frames):
        rgb, depth = load(i)
        image = track.rgbd(rgb, depth)
        if progress is not None:
            progress()
        if last is None:
            if int((np.asarray(image.depth) > 0).sum()) == 0:
                traj.failed[i] = "no valid depth"
                continue
            add_keyframe(i, rgb, depth, np.eye(4))
            last = (i, image)
            continue
        result = track.odometry(image, last[1], np.eye(4), search=True)
        if isinstance(result, str):
            traj.failed[i] = result
            LOG.warning("frame %d excluded: %s", i, result)
            continue
        traj.fitness[i] = result.fitness
        traj.terms[i] = result.term + ("+features" if result.guided else "")
        kf, last_rel = relative[last[0]]
        rel = last_rel @ result.trans
        relative[i] = (kf, rel)
        last = (i, image)
        covariance += np.linalg.pinv(result.info)
        translation, rotation = motion_size(rel)
        if translation > config.keyframe_translation or rotation > config.keyframe_rotation_deg:
            add_keyframe(i, rgb, depth, np.asarray(graph.nodes[node_of[kf]].pose) @ rel)
            following[kf] = (i, rel)
            info = np.linalg.pinv(covariance)
            graph.edges.append(o3d.pipelines.registration.PoseGraphEdge(node_of[i], node_of[kf], rel, info, False))
            covariance = np.zeros((6, 6))
    if last is None:
        raise ValueError("no frame has valid depth; cannot estimate poses")
    _close_loops(loop, graph, node_of, images, traj)
    _optimise(graph, config)
    for i, (kf, rel) in relative.items():
        traj.c2w[i] = np.asarray(graph.nodes[node_of[kf]].pose) @ rel
        if i != kf and kf in following:
            # The optimised graph moves both keyframes around frame i; share their corrections by its
            # position along the chain, as the chain's drift grows from one keyframe to the next.
            nxt, nxt_rel = following[kf]
            from_next = np.asarray(graph.nodes[node_of[nxt]].pose) @ np.linalg.inv(nxt_rel) @ rel
            traj.c2w[i] = interpolate_pose(traj.c2w[i], from_next, (i - kf) / (nxt - kf))
    if up is not None:
        _level(traj, up)
    return traj


def _close_loops(
    est: PoseEstimator,
    graph: o3d.pipelines.registration.PoseGraph,
    node_of: dict[int, int],
    images: dict[int, o3d.geometry.RGBDImage],
    traj: Trajectory,
) -> None:
    """Add uncertain edges between keyframes that revisit the same view (by the odometry estimate)."""
    config = est.config
    kfs = traj.keyframes
    poses = np.stack([np.asarray(graph.nodes[node_of[k]].pose) for k in kfs])
    centres, forward = poses[:, :3, 3], poses[:, :3, 2]
    cos_max = np.cos(np.deg2rad(config.loop_max_angle_deg))
    for b in range(len(kfs)):
        a_all = np.arange(0, b - config.loop_min_gap + 1)
        if a_all.size == 0:
            continue
        dist = np.linalg.norm(centres[a_all] - centres[b], axis=1)
        ok = (dist < config.loop_radius) & ((forward[a_all] @ forward[b]) > cos_max)
        for a in a_all[ok][np.argsort(dist[ok])][: config.loop_max_per_keyframe]:
            init = np.linalg.inv(poses[a]) @ poses[b]  # maps keyframe b's camera into keyframe a's
            result = est.odometry(images[kfs[b]], images[kfs[a]], init)
            if isinstance(result, str) or np.linalg.norm((np.linalg.inv(init) @ result.trans)[:3, 3]) > (
                config.loop_max_correction
            ):
                continue
            graph.edges.append(
                o3d.pipelines.registration.PoseGraphEdge(
                    node_of[kfs[b]], node_of[kfs[a]], result.trans, result.info, True
                )
            )
            traj.loop_closures.append((kfs[a], kfs[b]))


def _optimise(graph: o3d.pipelines.registration.PoseGraph, config: PoseConfig) -> None:
    """Levenberg-Marquardt over the pose graph; pruned loop closures are those inconsistent with odometry."""
    if len(graph.nodes) < 2:
        return
    with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
        o3d.pipelines.registration.global_optimization(
            graph,
            o3d.pipelines.registration.GlobalOptimizationLevenbergMarquardt(),
            o3d.pipelines.registration.GlobalOptimizationConvergenceCriteria(),
            o3d.pipelines.registration.GlobalOptimizationOption(
                max_correspondence_distance=config.depth_diff_max,
                edge_prune_threshold=0.25,
                preference_loop_closure=0.1,
                reference_node=0,
            ),
        )


def gravity_alignment(c2w: dict[int, np.ndarray], up: Sequence[np.ndarray | None]) -> np.ndarray | None:
    """Rotation taking the mean measured up direction (world frame) to +z, or None without readings."""
    ups = [
        c2w[i][:3, :3] @ a / np.linalg.norm(a)
        for i, a in enumerate(up)
        if a is not None and i in c2w and np.linalg.norm(a) > 0
    ]
    if not ups:
        return None
    up = np.mean(ups, axis=0)
    rot, _ = Rotation.align_vectors([[0.0, 0.0, 1.0]], [up / np.linalg.norm(up)])
    return rot.as_matrix()


def _level(traj: Trajectory, up: Sequence[np.ndarray | None]) -> None:
    """Rotate the world so that gravity points along -z."""
    R = gravity_alignment(traj.c2w, up)
    if R is None:
        return
    T = np.eye(4)
    T[:3, :3] = R
    traj.c2w = {i: T @ c for i, c in traj.c2w.items()}
    traj.levelled = True
