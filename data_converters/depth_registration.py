"""Moving a depth map from the camera that measured it into another pinhole camera (registration).

Shared by every capture whose depth and colour come from different cameras (NYU's Kinect, ScanNet's
Structure sensor beside an iPad camera): each valid depth pixel is back-projected, moved rigidly,
projected to the nearest target pixel and z-buffered (the nearest surface wins), so depth is never
blended across an edge. Target pixels no depth pixel lands on stay 0 (invalid).
"""

from __future__ import annotations

import numpy as np


def reproject_depth(
    depth_m: np.ndarray, K_src: np.ndarray, K_dst: np.ndarray, src_to_dst: np.ndarray, size: tuple[int, int]
) -> np.ndarray:
    """(height, width) float32 depth in metres as the target camera of `size` = (width, height) sees it.

    `depth_m` is z-depth of the source camera (0 = invalid); `K_src`, `K_dst` are OpenCV intrinsics
    (pixel centres at integer coordinates); `src_to_dst` (4x4) takes source-camera points to target-camera points.
    """
    width, height = size
    v, u = np.nonzero(depth_m > 0)
    z = depth_m[v, u].astype(np.float64)
    pts = np.stack([(u - K_src[0, 2]) / K_src[0, 0] * z, (v - K_src[1, 2]) / K_src[1, 1] * z, z], 1)
    pts = pts @ src_to_dst[:3, :3].T + src_to_dst[:3, 3]
    pts = pts[pts[:, 2] > 1e-6]
    u_dst = np.round(K_dst[0, 0] * pts[:, 0] / pts[:, 2] + K_dst[0, 2]).astype(np.int64)
    v_dst = np.round(K_dst[1, 1] * pts[:, 1] / pts[:, 2] + K_dst[1, 2]).astype(np.int64)
    inside = (u_dst >= 0) & (u_dst < width) & (v_dst >= 0) & (v_dst < height)
    out = np.full(width * height, np.inf)
    np.minimum.at(out, v_dst[inside] * width + u_dst[inside], pts[inside, 2])
    out[~np.isfinite(out)] = 0.0
    return out.reshape(height, width).astype(np.float32)


def resized_intrinsics(K: np.ndarray, size: tuple[int, int], new_size: tuple[int, int]) -> np.ndarray:
    """OpenCV intrinsics of an image of `size` (width, height) after `cv2.resize` to `new_size`.

    Pixel centres sit at integer coordinates, so the principal point scales about the image corner
    -0.5, not about 0 (scaling cx alone would shift the image by half a pixel at each halving).
    """
    sx, sy = new_size[0] / size[0], new_size[1] / size[1]
    K = np.asarray(K, dtype=np.float64).copy()
    K[0, 0], K[0, 2] = K[0, 0] * sx, (K[0, 2] + 0.5) * sx - 0.5
    K[1, 1], K[1, 2] = K[1, 1] * sy, (K[1, 2] + 0.5) * sy - 0.5
    return K
