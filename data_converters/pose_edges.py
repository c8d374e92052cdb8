"""Pure pieces of one odometry edge: a feature-based first guess, point-to-plane ICP and one residual that
ranks estimates from different terms.

Dense RGB-D odometry converges only from a guess inside its basin (a few centimetres, a few degrees):
frames farther apart need a first guess from features (ORB matches lifted to 3D with the depth, then PnP
with RANSAC). Which dense term is right also depends on the scene: on a real Kinect v1 sequence the depth
terms under-estimated motion where the colour term did not (issue 19), and on textureless walls the
colour term has nothing to hold. So each edge is estimated by several terms and the estimate that best
explains both images (one truncated photometric + geometric cost) is kept.
"""

from __future__ import annotations

import cv2
import numpy as np
import open3d as o3d

PHOTOMETRIC_SCALE = 0.1
"""Intensity difference (0-1 grey levels) at which a pixel's photometric cost saturates."""


def backproject(u: np.ndarray, v: np.ndarray, z: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Camera-frame points (N, 3) of pixels (u, v) at z-depth z (OpenCV axes)."""
    return np.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z], axis=1)


def feature_guess(
    source_grey: np.ndarray,
    source_depth: np.ndarray,
    target_grey: np.ndarray,
    K: np.ndarray,
    max_features: int = 1500,
    min_inliers: int = 25,
) -> tuple[np.ndarray, int] | None:
    """Transform taking source-camera points into the target camera from ORB matches + PnP RANSAC on the
    source depth, with its inlier count; None where too few matches agree."""
    orb = cv2.ORB_create(max_features)
    k1, d1 = orb.detectAndCompute(source_grey, None)
    k2, d2 = orb.detectAndCompute(target_grey, None)
    if d1 is None or d2 is None:
        return None
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(d1, d2)
    if len(matches) < min_inliers:
        return None
    p1 = np.array([k1[m.queryIdx].pt for m in matches])
    p2 = np.array([k2[m.trainIdx].pt for m in matches])
    h, w = source_depth.shape
    z = source_depth[np.round(p1[:, 1]).astype(int).clip(0, h - 1), np.round(p1[:, 0]).astype(int).clip(0, w - 1)]
    ok = z > 0
    if ok.sum() < min_inliers:
        return None
    cv2.setRNGSeed(0)  # RANSAC draws from OpenCV's global generator: the same frames give the same guess
    found, rvec, tvec, inliers = cv2.solvePnPRansac(
        backproject(p1[ok, 0], p1[ok, 1], z[ok], K), p2[ok], K, None, iterationsCount=200, reprojectionError=3.0
    )
    if not found or inliers is None or len(inliers) < min_inliers:
        return None
    T = np.eye(4)
    T[:3, :3] = cv2.Rodrigues(rvec)[0]
    T[:3, 3] = tvec[:, 0]
    return T, len(inliers)


def depth_cloud(depth: np.ndarray, K: np.ndarray, voxel: float) -> o3d.geometry.PointCloud:
    """Voxel-averaged point cloud of a depth map with normals from the image grid (the cross product of the
    neighbouring points' differences, facing the camera): a k-d tree normal search cost 10x more here."""
    h, w = depth.shape
    v, u = np.mgrid[0:h, 0:w]
    points = backproject(u.ravel(), v.ravel(), depth.ravel(), K).reshape(h, w, 3)
    normals = np.zeros_like(points)
    normals[1:-1, 1:-1] = np.cross(points[1:-1, 2:] - points[1:-1, :-2], points[2:, 1:-1] - points[:-2, 1:-1])
    valid = depth > 0
    valid[1:-1, 1:-1] &= valid[1:-1, 2:] & valid[1:-1, :-2] & valid[2:, 1:-1] & valid[:-2, 1:-1]
    valid[[0, -1], :] = valid[:, [0, -1]] = False
    length = np.linalg.norm(normals, axis=2)
    valid &= length > 0
    normals = normals[valid] / length[valid, None]
    normals *= -np.sign(np.sum(normals * points[valid], axis=1, keepdims=True))
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points[valid]))
    cloud.normals = o3d.utility.Vector3dVector(normals)
    return cloud.voxel_down_sample(voxel)


def icp_point_to_plane(
    source: o3d.geometry.PointCloud, target: o3d.geometry.PointCloud, init: np.ndarray, max_distance: float
) -> np.ndarray:
    """Point-to-plane ICP between two `depth_cloud`s (the "depth" odometry term)."""
    result = o3d.pipelines.registration.registration_icp(
        source,
        target,
        max_distance,
        init,
        o3d.pipelines.registration.TransformationEstimationPointToPlane(),
        o3d.pipelines.registration.ICPConvergenceCriteria(max_iteration=20),
    )
    return np.asarray(result.transformation)


def _correspondences(
    source_grey: np.ndarray,
    source_depth: np.ndarray,
    target_grey: np.ndarray,
    target_depth: np.ndarray,
    K: np.ndarray,
    T: np.ndarray,
    step: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Source pixels with depth moved into the target: (points in the target camera, landed inside the image
    on target depth, z-depth difference, grey difference) for every `step`-th source pixel."""
    v, u = np.nonzero(source_depth[::step, ::step] > 0)
    v, u = v * step, u * step
    q = backproject(u, v, source_depth[v, u], K) @ T[:3, :3].T + T[:3, 3]
    z = np.maximum(q[:, 2], 1e-9)
    ut = np.round(K[0, 0] * q[:, 0] / z + K[0, 2]).astype(int)
    vt = np.round(K[1, 1] * q[:, 1] / z + K[1, 2]).astype(int)
    h, w = target_depth.shape
    landed = (q[:, 2] > 0) & (ut >= 0) & (ut < w) & (vt >= 0) & (vt < h)
    ut, vt = np.where(landed, ut, 0), np.where(landed, vt, 0)
    seen = target_depth[vt, ut]
    landed &= seen > 0
    return q, landed, np.where(landed, q[:, 2] - seen, np.inf), source_grey[v, u] - target_grey[vt, ut]


def edge_cost(
    source_grey: np.ndarray,
    source_depth: np.ndarray,
    target_grey: np.ndarray,
    target_depth: np.ndarray,
    K: np.ndarray,
    T: np.ndarray,
    depth_diff_max: float,
    step: int = 2,
) -> tuple[float, float]:
    """(cost, fitness) of transform T (source camera -> target camera) on every `step`-th source pixel.

    Each source pixel with depth is moved into the target image. Its cost is the mean of a geometric term
    (z-depth difference over `depth_diff_max`) and a photometric term (grey difference over
    PHOTOMETRIC_SCALE), each squared and saturated at 1. A pixel that leaves the image or lands on missing
    target depth costs the maximum, so an estimate cannot look good by pushing the overlap away. Fitness is
    the fraction of source pixels that land on target depth within `depth_diff_max`."""
    _, landed, dz, di = _correspondences(source_grey, source_depth, target_grey, target_depth, K, T, step)
    if landed.size == 0:
        return 1.0, 0.0
    geometric = np.minimum((dz / depth_diff_max) ** 2, 1.0)
    photometric = np.minimum((di / PHOTOMETRIC_SCALE) ** 2, 1.0)
    cost = np.where(landed, 0.5 * (geometric + photometric), 1.0)
    return float(cost.mean()), float((np.abs(dz) < depth_diff_max).mean())


def information_matrix(
    source_depth: np.ndarray, target_depth: np.ndarray, K: np.ndarray, T: np.ndarray, depth_diff_max: float
) -> np.ndarray:
    """6x6 information of transform T from its point correspondences, as Open3D's odometry builds it (rotation
    then translation; one row triple per inlier point in the target camera), so that every term's estimate
    weighs the same in the pose graph."""
    grey = np.zeros_like(source_depth)
    q, _, dz, _ = _correspondences(grey, source_depth, np.zeros_like(target_depth), target_depth, K, T, 1)
    x, y, z = q[np.abs(dz) < depth_diff_max].T
    zeros, ones = np.zeros_like(x), np.ones_like(x)
    G = np.stack(
        [
            np.stack([zeros, z, -y, ones, zeros, zeros], 1),
            np.stack([-z, zeros, x, zeros, ones, zeros], 1),
            np.stack([y, -x, zeros, zeros, zeros, ones], 1),
        ]
    ).reshape(-1, 6)
    return G.T @ G


def choose_estimate(costs: list[float], preferred: bool, margin: float) -> int:
    """Index of the estimate to keep among `costs` (one residual each). With `preferred`, the first estimate
    is kept unless another's cost is lower by more than the fraction `margin` of its cost; otherwise the
    lowest cost wins."""
    best = int(np.argmin(costs))
    if preferred and costs[best] >= costs[0] * (1.0 - margin):
        return 0
    return best
