"""A procedural corpus of indoor RGB-D frames with exact depth, for training and benchmarking depth priors.

Each room is drawn from its own seed: its size and shape (boxes, L-shapes and alcoves cut by solid
wall blocks), furniture (rotated boxes, tables on legs or pedestals, shelves with openings, sofas,
cylinders, slanted and thin boards, wall panels), procedural textures (wood, tiles, wallpaper
stripes, multi-scale sines), albedos from near-black to white, and lights. Views are random
camera poses in the room's free space. Every frame is ray-cast exactly (vectorised numpy, one core)
and comes with its albedo and normals, and with what a Kinect would have stored, from
`data_converters.synthetic.kinect_noise`.

Rooms of split "train" and split "heldout" come from disjoint seed streams, so benchmarks can score
on rooms that never appeared in training.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm import tqdm

from data_converters.nerfstudio_scene import depth_to_png_mm
from data_converters.nyu.calibration import raw_to_metres
from data_converters.synthetic.demo_scene import scaled_intrinsics
from data_converters.synthetic.kinect_noise import KinectNoiseModel
from data_converters.synthetic.room import look_at

Split = Literal["train", "heldout"]
SPLIT_STREAMS: dict[str, int] = {"train": 0, "heldout": 1}
PATTERNS = ("plain", "wood", "tiles", "sines", "stripes")
MIN_CLEARANCE_M = 0.35
"""The camera keeps this distance from every surface (the Kinect measures nothing closer than ~0.5 m)."""


@dataclass(frozen=True)
class Material:
    """Albedo texture: a base colour, a second colour the pattern mixes in, and the pattern's scale."""

    color: tuple[float, float, float]
    color2: tuple[float, float, float]
    pattern: int
    frequency: float
    contrast: float


@dataclass(frozen=True)
class OrientedBox:
    """Solid box: centre, half extents along its own axes, rotation (world-from-local columns)."""

    center: tuple[float, float, float]
    half: tuple[float, float, float]
    rotation: tuple[tuple[float, float, float], ...]
    material: int


@dataclass(frozen=True)
class Cylinder:
    """Solid upright cylinder (axis along world z) with flat caps."""

    center_xy: tuple[float, float]
    radius: float
    z0: float
    z1: float
    material: int


@dataclass
class RenderedView:
    """One ray-cast view: float RGB in [0, 1], planar z-depth (m), albedo, camera-frame unit normals."""

    rgb: np.ndarray
    depth: np.ndarray
    albedo: np.ndarray
    normals: np.ndarray


@dataclass
class CorpusRoom:
    """A room (z up, metres): outer box minus solid wall blocks, furniture primitives, materials, lights."""

    lo: np.ndarray
    hi: np.ndarray
    materials: list[Material]
    boxes: list[OrientedBox] = field(default_factory=list)
    cylinders: list[Cylinder] = field(default_factory=list)
    lights: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    """(position, RGB intensity) point lights."""
    ambient: float = 0.3
    surface_materials: tuple[int, int, int] = (0, 1, 2)
    """Materials of floor, ceiling and walls."""
    shadows: bool = True
    """Cast shadows from the lights (one extra ray cast per light)."""

    def render(self, K: np.ndarray, c2w: np.ndarray, height: int, width: int) -> RenderedView:
        """Ray-cast a pinhole view (nerfstudio pixel centres at +0.5; `c2w` in OpenCV axes)."""
        u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
        dirs_cam = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1).reshape(-1, 3)
        R = c2w[:3, :3]
        dirs = dirs_cam @ R.T
        origin = c2w[:3, 3].astype(np.float64)
        t, normal, material, tex = self._intersect(origin, dirs)
        points = origin + dirs * t[:, None]
        normal = np.where(((normal * dirs).sum(1) > 0)[:, None], -normal, normal)
        albedo = self._albedo(tex, material)
        rgb = np.clip(albedo * self._irradiance(points, normal), 0, 1)
        shape = (height, width)
        return RenderedView(
            rgb.reshape(*shape, 3).astype(np.float32),
            t.reshape(shape).astype(np.float32),  # unit-z camera rays: t is planar depth
            albedo.reshape(*shape, 3).astype(np.float32),
            (normal @ R).reshape(*shape, 3).astype(np.float32),
        )

    def clearance(self, point: np.ndarray) -> float:
        """Distance (m) from a point to the nearest surface; negative inside a solid or outside the room."""
        p = np.asarray(point, dtype=np.float64)
        d = float(np.min(np.concatenate([p - self.lo, self.hi - p])))
        for box in self.boxes:
            local = np.asarray(box.rotation).T @ (p - np.asarray(box.center))
            q = np.abs(local) - np.asarray(box.half)
            d = min(d, float(np.linalg.norm(np.maximum(q, 0)) + min(q.max(), 0.0)))
        for cyl in self.cylinders:
            radial = np.hypot(p[0] - cyl.center_xy[0], p[1] - cyl.center_xy[1]) - cyl.radius
            vertical = max(cyl.z0 - p[2], p[2] - cyl.z1)
            q = np.array([radial, vertical])
            d = min(d, float(np.linalg.norm(np.maximum(q, 0)) + min(q.max(), 0.0)))
        return d

    def _intersect(self, origin: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Nearest hit per ray: distance along the unit-z ray, world normal, material, texture coordinates."""
        n = len(dirs)
        safe = np.where(np.abs(dirs) < 1e-12, 1e-12, dirs)
        t1, t2 = (self.lo - origin) / safe, (self.hi - origin) / safe
        exit_t = np.maximum(t1, t2)
        axis = exit_t.argmin(1)
        t_best = exit_t[np.arange(n), axis]
        sign = np.sign(dirs[np.arange(n), axis])
        normal = np.zeros((n, 3))
        normal[np.arange(n), axis] = -sign
        floor, ceiling, wall = self.surface_materials
        material = np.where(axis == 2, np.where(sign < 0, floor, ceiling), wall)
        hits = _Hits(t_best, normal, material, origin + dirs * t_best[:, None])
        dirs_t = np.ascontiguousarray(dirs.T)  # (3, N): per-axis rows are contiguous, so slab tests vectorise well
        rays = _Rays(origin, dirs, dirs_t, (dirs_t * dirs_t).sum(0))
        for box in self.boxes:
            _hit_box(box, rays, hits)
        for cyl in self.cylinders:
            _hit_cylinder(cyl, rays, hits)
        return hits.t, hits.normal, hits.material, hits.tex

    def _albedo(self, tex: np.ndarray, material: np.ndarray) -> np.ndarray:
        """Procedural albedo of 3D texture coordinates (multi-view consistent by construction)."""
        mats = self.materials
        c1 = np.array([m.color for m in mats])[material]
        c2 = np.array([m.color2 for m in mats])[material]
        f = np.array([m.frequency for m in mats])[material]
        contrast = np.array([m.contrast for m in mats])[material]
        table = np.array([m.pattern for m in mats])
        pattern_id = table[material]
        p = tex * f[:, None]
        mix = np.zeros(len(tex))
        for pid in np.unique(table):
            sel = pattern_id == pid
            if not sel.any():
                continue
            q = p[sel]
            name = PATTERNS[pid]
            if name == "plain":
                m = 0.5 + 0.15 * np.sin(0.3 * q[:, 0] + 0.2 * q[:, 1]) * np.sin(0.25 * q[:, 2] + 1.0)
            elif name == "wood":
                m = 0.5 + 0.5 * np.sin(q[:, 0] + 0.8 * np.sin(0.35 * q[:, 1]) + 0.3 * np.sin(1.7 * q[:, 2]))
            elif name == "tiles":
                cells = np.floor(q / np.pi)
                grout = np.min(np.abs(np.mod(q, np.pi) - np.pi / 2), axis=1) > 1.45
                m = np.where(grout, 0.15, np.mod(cells.sum(1), 2))
            elif name == "sines":
                m = 0.5 + 0.25 * (
                    np.sin(q[:, 0] + 1.7 * np.sin(0.5 * q[:, 1]))
                    + np.sin(1.9 * q[:, 1] + 1.3 * q[:, 2])
                    + 0.5 * np.sin(4.3 * q[:, 0] + 3.7 * q[:, 1]) * np.sin(3.9 * q[:, 2] - 4.1 * q[:, 1])
                )
            else:  # stripes
                m = (np.sin(q[:, 2] + 0.2 * q[:, 0]) > 0.3).astype(np.float64)
            mix[sel] = np.clip(m, 0, 1)
        w = (contrast * mix)[:, None]
        return np.clip((1 - w) * c1 + w * c2, 0.0, 1.0)

    def _irradiance(self, points: np.ndarray, normal: np.ndarray) -> np.ndarray:
        """Ambient plus Lambertian point lights with distance falloff and cast shadows.

        Shadow rays are cast from each light to every point (one origin, so the same vectorised
        intersection serves): a point is lit when nothing is hit before it.
        """
        light = np.full((len(points), 3), self.ambient)
        for pos, colour in self.lights:
            to = pos - points
            dist2 = np.einsum("ij,ij->i", to, to)
            lambert = np.clip(np.einsum("ij,ij->i", normal, to) / np.sqrt(dist2), 0, None)
            facing = np.flatnonzero(lambert > 0)
            if self.shadows and len(facing):
                t_hit = self._intersect(np.asarray(pos, dtype=np.float64), -to[facing])[0]
                lambert[facing[t_hit < 1.0 - 1e-4]] = 0.0
            light += (lambert / (1 + 0.08 * dist2))[:, None] * colour
        return light


@dataclass
class _Rays:
    """Rays from one origin: (N, 3) directions, the same as (3, N), and their squared norms."""

    origin: np.ndarray
    dirs: np.ndarray
    dirs_t: np.ndarray
    dd: np.ndarray


@dataclass
class _Hits:
    """Nearest hit so far per ray, updated in place primitive by primitive."""

    t: np.ndarray
    normal: np.ndarray
    material: np.ndarray
    tex: np.ndarray


def _candidates(centre: np.ndarray, radius: float, rays: _Rays) -> np.ndarray:
    """Indices of rays that meet the primitive's bounding sphere (most rays miss most primitives)."""
    oc = rays.origin - centre
    b = oc @ rays.dirs_t
    disc = b * b - rays.dd * (oc @ oc - radius * radius)
    return np.flatnonzero(disc >= 0)


def _hit_box(box: OrientedBox, rays: _Rays, hits: _Hits) -> None:
    """Slab test in the box's own frame; updates `hits` where the box is nearer."""
    origin, dirs_t, t_best = rays.origin, rays.dirs_t, hits.t
    centre, half, rot = np.asarray(box.center), np.asarray(box.half), np.asarray(box.rotation)
    idx = _candidates(centre, float(np.linalg.norm(half)), rays)
    if not len(idx):
        return
    o_l = rot.T @ (origin - centre)
    d_l = rot.T @ dirs_t[:, idx]  # (3, M) ray directions in the box frame
    inv = 1.0 / np.where(np.abs(d_l) < 1e-12, 1e-12, d_l)
    a, b = (-half - o_l)[:, None] * inv, (half - o_l)[:, None] * inv
    tmin, tmax = np.minimum(a, b), np.maximum(a, b)
    t_enter = np.maximum(np.maximum(tmin[0], tmin[1]), tmin[2])
    t_exit = np.minimum(np.minimum(tmax[0], tmax[1]), tmax[2])
    hit = (t_enter <= t_exit) & (t_enter > 1e-6) & (t_enter < t_best[idx])
    if not hit.any():
        return
    rows, t_hit, d_hit = idx[hit], t_enter[hit], d_l[:, hit].T
    ax = tmin[:, hit].argmax(0)
    n_l = np.zeros((len(rows), 3))
    n_l[np.arange(len(rows)), ax] = -np.sign(d_hit[np.arange(len(rows)), ax])
    t_best[rows] = t_hit
    hits.normal[rows] = n_l @ rot.T
    hits.material[rows] = box.material
    hits.tex[rows] = o_l + d_hit * t_hit[:, None] + half  # local frame: textures follow the object


def _hit_cylinder(cyl: Cylinder, rays: _Rays, hits: _Hits) -> None:
    """Quadratic side test plus the cap facing the camera; updates `hits` where the cylinder is nearer."""
    origin, t_best = rays.origin, hits.t
    cx, cy = cyl.center_xy
    centre = np.array([cx, cy, 0.5 * (cyl.z0 + cyl.z1)])
    idx = _candidates(centre, float(np.hypot(cyl.radius, 0.5 * (cyl.z1 - cyl.z0))), rays)
    if not len(idx):
        return
    d = rays.dirs[idx]
    ox, oy = origin[0] - cx, origin[1] - cy
    a = d[:, 0] ** 2 + d[:, 1] ** 2
    b = 2 * (ox * d[:, 0] + oy * d[:, 1])
    c = ox * ox + oy * oy - cyl.radius**2
    disc = b * b - 4 * a * c
    with np.errstate(invalid="ignore", divide="ignore"):
        t_side = (-b - np.sqrt(np.maximum(disc, 0))) / (2 * np.maximum(a, 1e-12))
    z_side = origin[2] + d[:, 2] * t_side
    side_ok = (disc >= 0) & (a > 1e-12) & (t_side > 1e-6) & (z_side >= cyl.z0) & (z_side <= cyl.z1)
    t_side = np.where(side_ok, t_side, np.inf)
    dz = np.where(np.abs(d[:, 2]) < 1e-12, 1e-12, d[:, 2])
    t_cap = np.where(origin[2] > cyl.z1, (cyl.z1 - origin[2]) / dz, (cyl.z0 - origin[2]) / dz)
    px, py = ox + d[:, 0] * t_cap, oy + d[:, 1] * t_cap
    cap_ok = (t_cap > 1e-6) & (px * px + py * py <= cyl.radius**2) & ((origin[2] > cyl.z1) | (origin[2] < cyl.z0))
    t_cap = np.where(cap_ok, t_cap, np.inf)
    t_hit = np.minimum(t_side, t_cap)
    hit = np.isfinite(t_hit) & (t_hit < t_best[idx])
    if not hit.any():
        return
    rows, th, on_side = idx[hit], t_hit[hit], (t_side <= t_cap)[hit]
    p = origin + d[hit] * th[:, None]
    radial = np.stack([p[:, 0] - cx, p[:, 1] - cy, np.zeros(len(rows))], 1) / cyl.radius
    cap_n = np.zeros((len(rows), 3))
    cap_n[:, 2] = np.where(origin[2] > cyl.z1, 1.0, -1.0)
    t_best[rows] = th
    hits.normal[rows] = np.where(on_side[:, None], radial, cap_n)
    hits.material[rows] = cyl.material
    angle = np.arctan2(p[:, 1] - cy, p[:, 0] - cx) * cyl.radius
    hits.tex[rows] = np.stack([angle, p[:, 2], np.hypot(p[:, 0] - cx, p[:, 1] - cy)], 1)


def _random_material(rng: np.random.Generator, dark: bool = False) -> Material:
    """Muted colours mostly, a few saturated or near-black ones (black surfaces drop out on a Kinect)."""
    if dark:
        base = rng.uniform(0.02, 0.08) * np.ones(3) + rng.uniform(0, 0.02, 3)
    else:
        grey = rng.uniform(0.15, 0.9)
        sat = rng.choice([0.05, 0.2, 0.5], p=[0.5, 0.35, 0.15])
        base = np.clip(grey * (1 + sat * rng.uniform(-1, 1, 3)), 0.02, 1)
    color2 = np.clip(base * rng.uniform(0.4, 1.4) + rng.uniform(-0.1, 0.1, 3), 0.01, 1)
    return Material(
        tuple(base), tuple(color2), int(rng.integers(len(PATTERNS))), float(rng.uniform(2, 14)),
        float(rng.uniform(0.2, 0.9)),
    )  # fmt: skip


def _yaw(angle: float) -> tuple[tuple[float, float, float], ...]:
    c, s = np.cos(angle), np.sin(angle)
    return ((c, -s, 0.0), (s, c, 0.0), (0.0, 0.0, 1.0))


def _rotation(yaw: float, tilt: float) -> tuple[tuple[float, float, float], ...]:
    """Yaw about z after a tilt about the local x axis (slanted boards)."""
    c, s = np.cos(tilt), np.sin(tilt)
    R = np.asarray(_yaw(yaw)) @ np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    return tuple(tuple(float(x) for x in row) for row in R)


def _part(
    yaw: float, origin: np.ndarray, offset: tuple[float, float, float], half: tuple[float, float, float], material: int
) -> OrientedBox:
    """A box of a piece of furniture: `offset` in the piece's own (yawed) frame."""
    R = np.asarray(_yaw(yaw))
    return OrientedBox(tuple(origin + R @ np.asarray(offset)), tuple(half), _yaw(yaw), material)


def _furniture(
    kind: str, rng: np.random.Generator, xy: np.ndarray, yaw: float, mat: int, mat2: int
) -> tuple[list[OrientedBox], list[Cylinder], float]:
    """Boxes and cylinders of one piece; returns (boxes, cylinders, footprint radius)."""
    o = np.array([xy[0], xy[1], 0.0])
    boxes: list[OrientedBox] = []
    cyls: list[Cylinder] = []
    if kind == "table":
        w, d, h = rng.uniform(0.6, 1.6), rng.uniform(0.5, 0.9), rng.uniform(0.45, 0.8)
        boxes.append(_part(yaw, o, (0, 0, h - 0.02), (w / 2, d / 2, 0.025), mat))
        if rng.random() < 0.3:
            cyls.append(Cylinder(tuple(xy), 0.05, 0.0, h - 0.04, mat2))
        else:
            for sx in (-1, 1):
                for sy in (-1, 1):
                    boxes.append(
                        _part(yaw, o, (sx * (w / 2 - 0.05), sy * (d / 2 - 0.05), h / 2), (0.025, 0.025, h / 2), mat2)
                    )
        return boxes, cyls, np.hypot(w, d) / 2
    if kind == "shelf":
        w, d, h = rng.uniform(0.6, 1.4), rng.uniform(0.25, 0.45), rng.uniform(1.0, 2.1)
        t = 0.02
        boxes += [_part(yaw, o, (sx * (w / 2 - t), 0, h / 2), (t, d / 2, h / 2), mat) for sx in (-1, 1)]
        if rng.random() < 0.6:
            boxes.append(_part(yaw, o, (0, d / 2 - t / 2, h / 2), (w / 2, t / 2, h / 2), mat2))  # back panel
        for z in np.linspace(0.05, h - t, int(rng.integers(3, 6))):
            boxes.append(_part(yaw, o, (0, 0, z), (w / 2 - 2 * t, d / 2, t), mat))
        return boxes, cyls, np.hypot(w, d) / 2
    if kind == "sofa":
        w, d = rng.uniform(1.4, 2.2), rng.uniform(0.8, 1.0)
        boxes.append(_part(yaw, o, (0, 0, 0.22), (w / 2, d / 2, 0.22), mat))
        boxes.append(_part(yaw, o, (0, d / 2 - 0.1, 0.5), (w / 2, 0.1, 0.35), mat))
        boxes += [_part(yaw, o, (sx * (w / 2 - 0.1), 0, 0.35), (0.1, d / 2, 0.2), mat) for sx in (-1, 1)]
        return boxes, cyls, np.hypot(w, d) / 2
    if kind == "chair":
        s, h = rng.uniform(0.4, 0.5), rng.uniform(0.42, 0.48)
        boxes.append(_part(yaw, o, (0, 0, h), (s / 2, s / 2, 0.025), mat))
        for sx in (-1, 1):
            for sy in (-1, 1):
                boxes.append(
                    _part(yaw, o, (sx * (s / 2 - 0.03), sy * (s / 2 - 0.03), h / 2), (0.02, 0.02, h / 2), mat2)
                )
        back_tilt = rng.uniform(0.05, 0.3)  # a slanted part
        centre = o + np.asarray(_yaw(yaw)) @ np.array([0, s / 2, h + 0.25])
        boxes.append(OrientedBox(tuple(centre), (s / 2, 0.02, 0.25), _rotation(yaw, back_tilt), mat))
        return boxes, cyls, s
    if kind == "cabinet":
        w, d, h = rng.uniform(0.4, 1.2), rng.uniform(0.35, 0.7), rng.uniform(0.5, 1.3)
        boxes.append(_part(yaw, o, (0, 0, h / 2), (w / 2, d / 2, h / 2), mat))
        return boxes, cyls, np.hypot(w, d) / 2
    if kind == "lamp":
        h = rng.uniform(1.2, 1.7)
        cyls.append(Cylinder(tuple(xy), 0.015, 0.0, h, mat2))
        cyls.append(Cylinder(tuple(xy), rng.uniform(0.12, 0.22), h - 0.05, h + 0.22, mat))
        cyls.append(Cylinder(tuple(xy), 0.15, 0.0, 0.03, mat2))
        return boxes, cyls, 0.25
    if kind == "round":  # bin, stool, pouf, round side table
        r, h = rng.uniform(0.15, 0.45), rng.uniform(0.3, 0.8)
        cyls.append(Cylinder(tuple(xy), r, 0.0, h, mat))
        return boxes, cyls, r
    # leaning board: thin, slanted against nothing in particular
    w, h = rng.uniform(0.4, 1.0), rng.uniform(0.8, 1.6)
    tilt = rng.uniform(0.15, 0.45)
    centre = o + np.array([0, 0, h / 2 * np.cos(tilt)])
    boxes.append(OrientedBox(tuple(centre), (w / 2, 0.015, h / 2), _rotation(yaw, tilt), mat))
    return boxes, cyls, w / 2 + 0.3


FURNITURE = ("table", "shelf", "sofa", "chair", "cabinet", "lamp", "round", "board")


def make_room(rng: np.random.Generator) -> CorpusRoom:
    """Draw one room: shape, furniture, wall panels, materials and lights."""
    size = np.array([rng.uniform(2.8, 6.5), rng.uniform(2.5, 5.5), rng.uniform(2.3, 3.2)])
    lo = np.array([-size[0] / 2, -size[1] / 2, 0.0])
    hi = lo + size
    materials = [_random_material(rng) for _ in range(3)]  # floor, ceiling, walls
    materials[1] = Material((0.85, 0.85, 0.83), (0.8, 0.8, 0.78), 0, 1.0, 0.1)  # ceilings are mostly plain
    room = CorpusRoom(lo, hi, materials)
    full = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))

    def new_material(dark: bool = False) -> int:
        room.materials.append(_random_material(rng, dark))
        return len(room.materials) - 1

    shape = rng.choice(["box", "L", "alcove"], p=[0.3, 0.4, 0.3])
    blocked: list[tuple[np.ndarray, float]] = []  # (centre xy, radius) footprints to avoid
    if shape == "L":  # a solid corner block turns the box into an L
        cut = np.array([rng.uniform(0.3, 0.5) * size[0], rng.uniform(0.3, 0.5) * size[1]])
        sx, sy = rng.choice([-1, 1], 2)
        cx, cy = sx * (size[0] / 2 - cut[0] / 2), sy * (size[1] / 2 - cut[1] / 2)
        room.boxes.append(OrientedBox((cx, cy, size[2] / 2), (cut[0] / 2, cut[1] / 2, size[2] / 2), full, 2))
        blocked.append((np.array([cx, cy]), float(np.hypot(*cut) / 2)))
    elif shape == "alcove":  # two wall blocks leave a recess in one wall
        depth, width = rng.uniform(0.5, 1.2), rng.uniform(0.9, 0.6 * size[0])
        side = rng.choice([-1, 1])
        y = side * (size[1] / 2 - depth / 2)
        for sx in (-1, 1):
            block_w = (size[0] - width) / 2
            x = sx * (size[0] / 2 - block_w / 2)
            room.boxes.append(OrientedBox((x, y, size[2] / 2), (block_w / 2, depth / 2, size[2] / 2), full, 2))
            blocked.append((np.array([x, y]), float(np.hypot(block_w, depth) / 2)))
    for _ in range(int(rng.integers(4, 10))):
        kind = str(rng.choice(FURNITURE))
        for _try in range(20):
            xy = rng.uniform(lo[:2] + 0.3, hi[:2] - 0.3)
            yaw = float(
                rng.choice([0, np.pi / 2, np.pi, -np.pi / 2]) if rng.random() < 0.5 else rng.uniform(-np.pi, np.pi)
            )
            boxes, cyls, radius = _furniture(kind, rng, xy, yaw, new_material(rng.random() < 0.12), new_material())
            inside = np.all(xy - radius > lo[:2] - 0.2) and np.all(xy + radius < hi[:2] + 0.2)
            if inside and all(np.linalg.norm(xy - c) > radius + r for c, r in blocked):
                room.boxes += boxes
                room.cylinders += cyls
                blocked.append((xy, radius))
                break
    for _ in range(int(rng.integers(0, 4))):  # thin wall panels: pictures, a dark TV, doors
        axis = int(rng.integers(2))
        side = rng.choice([-1, 1])
        w, h = rng.uniform(0.4, 1.6), rng.uniform(0.4, 2.0)
        z = rng.uniform(0.3 + h / 2, max(0.31 + h / 2, size[2] - 0.1 - h / 2))
        along = rng.uniform(-0.3, 0.3) * size[1 - axis]
        pos = np.zeros(3)
        pos[axis] = side * (size[axis] / 2 - 0.02)
        pos[1 - axis] = along
        pos[2] = z
        half = np.zeros(3)
        half[axis], half[1 - axis], half[2] = 0.02, w / 2, h / 2
        room.boxes.append(OrientedBox(tuple(pos), tuple(half), full, new_material(rng.random() < 0.3)))
    for _ in range(int(rng.integers(1, 4))):
        pos = np.array([*rng.uniform(lo[:2] + 0.5, hi[:2] - 0.5), size[2] - rng.uniform(0.1, 0.6)])
        if room.clearance(pos) < 0.05:  # inside an L-shape's wall block or a tall shelf: it would light nothing
            continue
        tint = np.array([1.0, rng.uniform(0.85, 1.0), rng.uniform(0.65, 1.0)])
        room.lights.append((pos, rng.uniform(0.4, 1.1) * tint))
    room.ambient = float(rng.uniform(0.15, 0.45))
    return room


ROOM_TAG, VIEW_TAG = 1, 2
"""Seed-sequence tags: numpy ignores trailing zeros, so untagged room and view-0 streams would coincide."""


def room_rng(seed: int, split: Split, index: int) -> np.random.Generator:
    """The seed stream of room `index` of a split; "train" and "heldout" streams never meet."""
    if split not in SPLIT_STREAMS:
        raise ValueError(f"unknown split {split!r}; use one of {sorted(SPLIT_STREAMS)}")
    return np.random.default_rng([seed, SPLIT_STREAMS[split], index, ROOM_TAG])


def view_rng(seed: int, split: Split, room: int, view: int) -> np.random.Generator:
    """The seed stream of one view (pose and sensor noise), independent of its room's stream."""
    return np.random.default_rng([seed, SPLIT_STREAMS[split], room, VIEW_TAG, view])


def sample_view(room: CorpusRoom, rng: np.random.Generator, max_tries: int = 200) -> np.ndarray:
    """A hand-held-like camera pose (OpenCV c2w) in free space, looking into the room."""
    for _ in range(max_tries):
        eye = np.array([*rng.uniform(room.lo[:2] + 0.3, room.hi[:2] - 0.3), rng.uniform(0.9, 1.9)])
        if room.clearance(eye) < MIN_CLEARANCE_M:
            continue
        targets = np.column_stack([rng.uniform(room.lo[:2], room.hi[:2], (4, 2)), rng.uniform(0.2, 1.6, 4)])
        target = targets[np.argmax(np.linalg.norm(targets[:, :2] - eye[:2], axis=1))]  # look across the room
        if np.linalg.norm(target[:2] - eye[:2]) < 1.0:
            continue
        c2w = look_at(eye, target)
        roll = rng.normal(0, np.deg2rad(4))
        c, s = np.cos(roll), np.sin(roll)
        c2w[:3, :3] = c2w[:3, :3] @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
        return c2w
    raise RuntimeError("no free camera position found in the room (furniture too dense)")


@dataclass
class CorpusFrame:
    """One corpus frame: exact geometry, and what a Kinect registered to the RGB camera would have stored."""

    rgb: np.ndarray  # (H, W, 3) uint8
    depth: np.ndarray  # (H, W) float32 metres, exact planar depth
    raw_disparity: np.ndarray  # (H, W) uint16 11-bit Kinect disparity, RAW_INVALID = missing
    albedo: np.ndarray  # (H, W, 3) float32 in [0, 1]
    normals: np.ndarray  # (H, W, 3) float32, camera frame (OpenCV axes)
    K: np.ndarray  # (3, 3) nerfstudio pixel convention (centres at +0.5)
    c2w: np.ndarray  # (4, 4) OpenCV camera-to-world
    split: str
    room: int
    view: int

    @property
    def raw(self) -> np.ndarray:
        """The corrupted depth in metres (float32, 0 = missing), by the NYU toolbox conversion."""
        return raw_to_metres(self.raw_disparity)

    @property
    def name(self) -> str:
        return f"corpus {self.split} room {self.room} view {self.view}"


def corpus_frames(
    num_rooms: int,
    views_per_room: int,
    width: int = 160,
    height: int = 120,
    seed: int = 0,
    split: Split = "train",
    noise: KinectNoiseModel | None = None,
    max_near_fraction: float = 0.3,
) -> Iterator[CorpusFrame]:
    """Rendered, Kinect-corrupted frames, room by room; deterministic in (seed, split, room, view).

    Views where more than `max_near_fraction` of the image is closer than the Kinect's minimum range
    are redrawn. `noise` defaults to `default_noise(width)`.
    """
    for r in range(num_rooms):
        yield from room_frames(r, views_per_room, width, height, seed, split, noise, max_near_fraction)


def room_frames(
    room_index: int,
    views_per_room: int,
    width: int = 160,
    height: int = 120,
    seed: int = 0,
    split: Split = "train",
    noise: KinectNoiseModel | None = None,
    max_near_fraction: float = 0.3,
) -> Iterator[CorpusFrame]:
    """The views of one room (rooms are independent, so they can be rendered in parallel)."""
    noise = noise or default_noise(width)
    K = scaled_intrinsics(width, height)
    room = make_room(room_rng(seed, split, room_index))
    for v in range(views_per_room):
        rng = view_rng(seed, split, room_index, v)
        for _ in range(20):
            c2w = sample_view(room, rng)
            view = room.render(K, c2w, height, width)
            if (view.depth < noise.min_range_m).mean() <= max_near_fraction:
                break
        raw = noise.corrupt_raw(view.depth, view.rgb, rng, K=K, albedo=view.albedo, normals=view.normals)
        rgb8 = (view.rgb * 255 + 0.5).astype(np.uint8)
        yield CorpusFrame(rgb8, view.depth, raw, view.albedo, view.normals, K, c2w, split, room_index, v)


def default_noise(width: int) -> KinectNoiseModel:
    """The corpus's Kinect model: depth registered to the RGB camera, misregistered by ~1 px at 640 px width."""
    return KinectNoiseModel.registered_to_rgb(misregistration_px=width / 640)


CORPUS_FILE = "corpus.json"
CORPUS_FORMAT = "diffnerf-ns corpus v1"


def _write_room(out_dir: Path, room: int, views_per_room: int, width: int, height: int, seed: int, split: Split) -> str:
    """Render one room and write its shard; returns the file name."""
    views = list(room_frames(room, views_per_room, width, height, seed, split))
    name = f"{split}_room_{room:05d}.npz"
    np.savez_compressed(  # ~40 KB per 160x120 frame
        out_dir / name,
        rgb=np.stack([f.rgb for f in views]),
        depth_mm=np.stack([depth_to_png_mm(f.depth) for f in views]),
        raw_disparity=np.stack([f.raw_disparity for f in views]),
        albedo=np.stack([np.round(f.albedo * 255).astype(np.uint8) for f in views]),
        normals=np.stack([np.round(f.normals * 127).astype(np.int8) for f in views]),
        K=views[0].K,
        c2w=np.stack([f.c2w for f in views]),
        view=np.array([f.view for f in views]),
    )
    return name


def write_corpus(
    out_dir: Path,
    num_rooms: int,
    views_per_room: int,
    width: int = 160,
    height: int = 120,
    seed: int = 0,
    split: Split = "train",
    workers: int = 1,
    progress: bool = True,
) -> Path:
    """Render a corpus to `out_dir`: one `.npz` per room, then `corpus.json` (written last: a complete corpus).

    With `workers > 1` rooms render in parallel processes; the shards are identical either way.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / CORPUS_FILE).unlink(missing_ok=True)
    job = partial(
        _write_room, out_dir, views_per_room=views_per_room, width=width, height=height, seed=seed, split=split
    )
    bar = partial(tqdm, total=num_rooms, desc=f"rendering {split} corpus (rooms)", disable=not progress)
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            files = list(bar(pool.map(job, range(num_rooms))))
    else:
        files = list(bar(map(job, range(num_rooms))))
    spec = {"format": CORPUS_FORMAT, "seed": seed, "split": split, "num_rooms": num_rooms}
    spec |= {"views_per_room": views_per_room, "width": width, "height": height, "files": files}
    spec["noise"] = asdict(default_noise(width))
    spec["depth"] = "depth_mm: exact planar depth, uint16 mm; raw_disparity: 11-bit Kinect raw, 2047 = missing"
    (out_dir / CORPUS_FILE).write_text(json.dumps(spec, indent=2))
    return out_dir


def read_corpus(corpus_dir: Path) -> Iterator[CorpusFrame]:
    """Stream a corpus written by `write_corpus`, room by room."""
    corpus_dir = Path(corpus_dir)
    spec_path = corpus_dir / CORPUS_FILE
    if not spec_path.is_file():
        raise FileNotFoundError(f"{spec_path}: missing; {corpus_dir} is not a (complete) corpus from write_corpus")
    spec = json.loads(spec_path.read_text())
    if spec.get("format") != CORPUS_FORMAT:
        raise ValueError(f"{spec_path}: format {spec.get('format')!r}, expected {CORPUS_FORMAT!r}")
    for name in spec["files"]:
        room = int(name.rsplit("_", 1)[1].split(".")[0])
        with np.load(corpus_dir / name) as data:
            for i, view in enumerate(data["view"]):
                yield CorpusFrame(
                    data["rgb"][i], data["depth_mm"][i].astype(np.float32) / 1000.0, data["raw_disparity"][i],
                    data["albedo"][i].astype(np.float32) / 255.0, data["normals"][i].astype(np.float32) / 127.0,
                    data["K"], data["c2w"][i], spec["split"], room, int(view),
                )  # fmt: skip
