"""The corpus's rooms as solid primitives, and their exact ray caster.

A room is an outer box with solid boxes and upright cylinders inside; rendering intersects every pixel's ray
with all of them (vectorised numpy, one core) and shades the nearest hit with a procedural 3D texture and point
lights, so depth, normals and albedo are exact and multi-view consistent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PATTERNS = ("plain", "wood", "tiles", "sines", "stripes")


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
