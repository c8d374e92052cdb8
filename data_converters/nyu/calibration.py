"""NYU Depth V2 Kinect calibration (toolbox `camera_params.m`), in OpenCV conventions.

Intrinsics use OpenCV's pixel convention (pixel centres at integer coordinates); distortion is
(k1, k2, p1, p2, k3). The toolbox writes the depth-to-RGB extrinsics as a rotation close to -I;
`R_EFF`/`T_EFF` are the equivalent proper rigid transform (tested to project identically).
"""

from __future__ import annotations

import numpy as np

WIDTH, HEIGHT = 640, 480

K_RGB = np.array(
    [
        [5.1885790117450188e02, 0.0, 3.2558244941119034e02],
        [0.0, 5.1946961112127485e02, 2.5373616633400465e02],
        [0.0, 0.0, 1.0],
    ]
)
K_DEPTH = np.array(
    [
        [5.8262448167737955e02, 0.0, 3.1304475870804731e02],
        [0.0, 5.8269103270988637e02, 2.3844389626620386e02],
        [0.0, 0.0, 1.0],
    ]
)
DIST_RGB = np.array(
    [2.0796615318809061e-01, -5.8613825163911781e-01, 7.2231363135888329e-04, 1.0479627195765181e-03,
     4.9856986684705107e-01]
)  # fmt: skip
DIST_DEPTH = np.array(
    [-9.9897236553084481e-02, 3.9065324602765344e-01, 1.9290592870229277e-03, -1.9422022475975055e-03,
     -5.1031725053400578e-01]
)  # fmt: skip

_R_TOOLBOX_VALUES = np.array(
    [0.99997798940829263, 5.0518419386157446e-03, 4.3011152014118693e-03, -5.0359919480810989e-03,
     0.99998051861143999, -3.6879781309514218e-03, -4.3196624923060242e-03, 3.6662365748484798e-03,
     0.99998394948385538]
)  # fmt: skip
# MATLAB: R = inv(reshape(-v, 3, 3)'); reshape is column-major, so reshape(v,3,3)' is numpy's row-major reshape.
R_TOOLBOX = np.linalg.inv(-_R_TOOLBOX_VALUES.reshape(3, 3))
T_TOOLBOX = np.array([0.025031875059141302, -2.9342312935846411e-04, 6.6238747008330102e-04])

# p_rgb ~ R_TOOLBOX p + T_TOOLBOX = -(R_EFF p + T_EFF): same ray, positive depth, det(R_EFF) = +1.
R_EFF = -R_TOOLBOX
T_EFF = -T_TOOLBOX


def depth_to_rgb() -> np.ndarray:
    """4x4 rigid transform taking points from the depth camera frame to the RGB camera frame."""
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R_EFF, T_EFF
    return T


# Valid area after projection (toolbox `get_projection_mask.m`: rows 45..471, cols 41..601, 1-based inclusive).
CROP_ROWS = slice(44, 471)
CROP_COLS = slice(40, 601)


def cropped_rgb_intrinsics() -> np.ndarray:
    """RGB intrinsics of the undistorted image after cropping the invalid border."""
    K = K_RGB.copy()
    K[0, 2] -= CROP_COLS.start
    K[1, 2] -= CROP_ROWS.start
    return K


# Kinect accelerometer axes (x left, y up, z forward, reading +g upward at rest) to OpenCV camera axes
# (x right, y down, z forward). Assumed from libfreenect's conventions; not verifiable on the fixtures.
ACCEL_TO_CAMERA = np.diag([-1.0, -1.0, 1.0])


# Raw Kinect disparity <-> metres (toolbox `depth_rel2depth_abs.m`); REFERENCE §1.
RAW_A, RAW_B = 351.3, 1092.5  # metres = RAW_A / (RAW_B - raw)
RAW_INVALID = 2047


def metres_to_raw(depth_m: np.ndarray) -> np.ndarray:
    """Float raw disparity for depth in metres (inverse of `raw_to_metres`)."""
    with np.errstate(divide="ignore"):
        return RAW_B - RAW_A / np.asarray(depth_m, dtype=np.float64)


def raw_to_metres(raw: np.ndarray) -> np.ndarray:
    """NYU toolbox conversion: invalid (2047, < 600, or non-positive depth) becomes 0; clamps at 10 m."""
    raw = np.asarray(raw, dtype=np.float64)
    with np.errstate(divide="ignore"):
        depth = RAW_A / (RAW_B - raw)
    invalid = (raw >= RAW_INVALID) | (raw < 600) | (depth <= 0) | ~np.isfinite(depth)
    depth = np.minimum(depth, 10.0)
    depth[invalid] = 0.0
    return depth.astype(np.float32)
