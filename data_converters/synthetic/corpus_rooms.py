"""Random corpus rooms and camera views, each drawn from its own seed stream.

A room's stream draws its shape (box, L-shape, alcove), furniture, wall panels, materials and lights; a view's
stream draws a hand-held-like pose in the room's free space (and, downstream, its sensor noise). "train" and
"heldout" rooms come from disjoint streams.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from data_converters.synthetic.corpus_render import PATTERNS, CorpusRoom, Cylinder, Material, OrientedBox
from data_converters.synthetic.room import look_at

Split = Literal["train", "heldout"]
SPLIT_STREAMS: dict[str, int] = {"train": 0, "heldout": 1}
MIN_CLEARANCE_M = 0.35
"""The camera keeps this distance from every surface (the Kinect measures nothing closer than ~0.5 m)."""


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
