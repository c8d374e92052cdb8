"""A procedurally textured indoor room, ray-cast exactly, so every pixel has true depth.

The room is an axis-aligned box (z up, metres) with box-shaped furniture. Textures are
functions of the 3D surface point, so appearance is multi-view consistent, which both
NeRF training and photometric odometry rely on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Box:
    """Axis-aligned solid box with its own albedo and texture frequency."""

    lo: tuple[float, float, float]
    hi: tuple[float, float, float]
    color: tuple[float, float, float]
    frequency: float = 6.0


@dataclass
class RoomScene:
    """A closed room seen from inside, plus furniture boxes inside it."""

    room_lo: tuple[float, float, float] = (-2.5, -2.0, 0.0)
    room_hi: tuple[float, float, float] = (2.5, 2.0, 2.6)
    boxes: list[Box] = field(default_factory=list)
    light: tuple[float, float, float] = (0.5, -0.3, 2.4)

    @classmethod
    def default(cls) -> RoomScene:
        """A living-room-like layout: table, sofa, shelf, cabinet and a dark TV panel."""
        return cls(
            boxes=[
                Box((-0.6, -0.4, 0.0), (0.6, 0.4, 0.75), (0.62, 0.42, 0.25), 9.0),  # table
                Box((-2.3, -1.8, 0.0), (-1.5, 0.8, 0.85), (0.25, 0.35, 0.6), 5.0),  # sofa
                Box((1.6, 1.3, 0.0), (2.4, 1.9, 1.9), (0.55, 0.5, 0.45), 11.0),  # shelf
                Box((1.4, -1.9, 0.0), (2.3, -1.3, 1.0), (0.7, 0.7, 0.68), 7.0),  # cabinet
                Box((-0.9, 1.9, 0.9), (0.9, 1.98, 1.8), (0.06, 0.06, 0.07), 3.0),  # dark TV
            ]
        )

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned scene bounds in metres (the room's inner box)."""
        return np.asarray(self.room_lo, float), np.asarray(self.room_hi, float)

    def render(self, K: np.ndarray, c2w: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Render float RGB in [0, 1] (H, W, 3) and planar z-depth in metres (H, W).

        `c2w` is a 4x4 camera-to-world matrix in OpenCV axes (x right, y down, z forward).
        """
        u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
        dirs_cam = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1).reshape(-1, 3)
        rgb, depth = self.render_rays(c2w, dirs_cam)
        return rgb.reshape(height, width, 3), depth.reshape(height, width)

    def render_rays(self, c2w: np.ndarray, dirs_cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Render (N, 3) camera-frame rays with unit z (e.g. a distorted lens): RGB (N, 3) and planar depth (N,)."""
        dirs = dirs_cam @ c2w[:3, :3].T
        origin = c2w[:3, 3]
        t, normal, albedo_idx, freq = self._intersect(origin, dirs)
        points = origin + dirs * t[:, None]
        rgb = self._shade(points, normal, albedo_idx, freq)
        return rgb, t.astype(np.float32)  # dirs have unit z in the camera frame, so t is planar depth

    def _intersect(self, origin: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        n = dirs.shape[0]
        safe = np.where(np.abs(dirs) < 1e-12, 1e-12, dirs)
        inv = 1.0 / safe
        # Room: the ray exits the inner box through a wall, floor or ceiling.
        lo, hi = self.bounds()
        t1, t2 = (lo - origin) * inv, (hi - origin) * inv
        exit_axis_t = np.maximum(t1, t2)
        t_best = exit_axis_t.min(axis=1)
        axis = exit_axis_t.argmin(axis=1)
        sign = np.sign(dirs[np.arange(n), axis])
        normal = np.zeros((n, 3))
        normal[np.arange(n), axis] = -sign
        # Material index: 0 floor, 1 ceiling, 2 walls; boxes are 3 + i.
        material = np.where(axis == 2, np.where(sign < 0, 0, 1), 2)
        freq = np.full(n, 4.0)
        for i, box in enumerate(self.boxes):
            b1 = (np.asarray(box.lo) - origin) * inv
            b2 = (np.asarray(box.hi) - origin) * inv
            tmin, tmax = np.minimum(b1, b2), np.maximum(b1, b2)
            t_enter = tmin.max(axis=1)
            hit = (t_enter <= tmax.min(axis=1)) & (t_enter > 1e-6) & (t_enter < t_best)
            if not hit.any():
                continue
            ax = tmin[hit].argmax(axis=1)
            t_best[hit] = t_enter[hit]
            nrm = np.zeros((int(hit.sum()), 3))
            nrm[np.arange(len(ax)), ax] = -np.sign(dirs[hit][np.arange(len(ax)), ax])
            normal[hit] = nrm
            material[hit] = 3 + i
            freq[hit] = box.frequency
        return t_best, normal, material, freq

    def _albedo(self, points: np.ndarray, material: np.ndarray, freq: np.ndarray) -> np.ndarray:
        base = np.array(
            [[0.55, 0.45, 0.35], [0.85, 0.85, 0.82], [0.75, 0.68, 0.55]] + [list(b.color) for b in self.boxes]
        )[material]
        f = freq[:, None]
        # Band-limited multi-scale texture: smooth enough to interpolate, rich enough to match.
        p = points * f
        pattern = (
            0.5 * np.sin(p[:, 0] + 1.7 * np.sin(0.5 * p[:, 1]))
            + 0.3 * np.sin(1.9 * p[:, 1] + 1.3 * p[:, 2])
            + 0.2 * np.sin(3.1 * p[:, 2] - 2.3 * p[:, 0] + 0.7 * np.cos(p[:, 1]))
            + 0.25 * np.sin(4.3 * p[:, 0] + 3.7 * p[:, 1]) * np.sin(3.9 * p[:, 2] - 4.1 * p[:, 1])
        )
        tiles = np.floor(points[:, 0] * 2) + np.floor(points[:, 1] * 2) + np.floor(points[:, 2] * 2)
        checker = np.where(material == 0, 0.15 * (np.mod(tiles, 2) - 0.5), 0.0)
        tint = np.stack([np.sin(0.7 * p[:, 0]), np.sin(0.9 * p[:, 1] + 1), np.sin(0.8 * p[:, 2] + 2)], 1)
        return np.clip(base * (1.0 + 0.35 * pattern[:, None] + checker[:, None]) + 0.06 * tint, 0, 1)

    def _shade(self, points: np.ndarray, normal: np.ndarray, material: np.ndarray, freq: np.ndarray) -> np.ndarray:
        to_light = np.asarray(self.light) - points
        dist = np.linalg.norm(to_light, axis=1, keepdims=True)
        lambert = np.clip((normal * to_light / dist).sum(1, keepdims=True), 0, 1)
        shading = 0.45 + 0.55 * lambert / (1 + 0.05 * dist**2)
        return np.clip(self._albedo(points, material, freq) * shading, 0, 1).astype(np.float32)


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray = np.array([0.0, 0.0, 1.0])) -> np.ndarray:
    """OpenCV camera-to-world matrix for a camera at `eye` looking at `target` (z-up world)."""
    fwd = target - eye
    fwd = fwd / np.linalg.norm(fwd)
    right = np.cross(fwd, up)
    right = right / np.linalg.norm(right)
    down = np.cross(fwd, right)
    c2w = np.eye(4)
    c2w[:3, :3] = np.stack([right, down, fwd], 1)
    c2w[:3, 3] = eye
    return c2w


def handheld_path(s: np.ndarray, seed: int = 0, arc_degrees: float = 120.0) -> np.ndarray:
    """Smooth hand-held-like path as a continuous function of progress `s` (0 = start, 1 = end).

    A walk along an arc with low-frequency shake; continuous so that streams sampled at different
    times (Kinect RGB and depth) can each be given their own pose. Returns (len(s), 4, 4) OpenCV
    camera-to-world matrices.
    """
    rng = np.random.default_rng(seed)
    s = np.asarray(s, dtype=np.float64)
    phase = rng.uniform(0, 2 * np.pi, size=6)
    shake = lambda k, amp: amp * np.sin(2 * np.pi * (1.3 + 0.4 * k) * s + phase[k])  # noqa: E731
    angle = np.deg2rad(-arc_degrees / 2 + arc_degrees * s) - np.pi / 2
    eyes = np.stack(
        [1.1 * np.cos(angle) + shake(0, 0.05), 0.9 * np.sin(angle) + shake(1, 0.05), 1.45 + shake(2, 0.04)],
        1,
    )
    targets = np.stack(
        [-0.7 * np.cos(angle) + shake(3, 0.1), -0.7 * np.sin(angle) + shake(4, 0.1), 0.8 + shake(5, 0.05)], 1
    )
    return np.stack([look_at(e, t) for e, t in zip(eyes, targets, strict=True)])


def handheld_trajectory(num_frames: int, seed: int = 0, arc_degrees: float = 120.0) -> np.ndarray:
    """`num_frames` evenly spaced poses along `handheld_path`: (N, 4, 4) OpenCV camera-to-world matrices."""
    return handheld_path(np.linspace(0.0, 1.0, num_frames), seed, arc_degrees)
