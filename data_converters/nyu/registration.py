"""Registering NYU raw depth into the undistorted RGB camera, as the toolbox's `project_depth_map.m`.

Depth is undistorted (nearest neighbour, never blended across edges), back-projected with the depth
intrinsics, moved by the calibrated extrinsics, projected with the RGB intrinsics and z-buffered
(the nearest surface wins); the RGB image is undistorted bilinearly. The invalid border that the
depth camera does not cover is cropped, and the intrinsics shifted to match. An optional rigid
`motion` of the RGB camera between the depth and the RGB timestamps (time_offset.py) moves the
point cloud before it is z-buffered, so the depth lands where the RGB camera saw the scene.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from data_converters.depth_registration import reproject_depth
from data_converters.nyu import calibration as cal
from data_converters.nyu.calibration import raw_to_metres


@dataclass
class RegisteredFrame:
    """RGB and depth (metres, 0 = invalid) on the same undistorted RGB pixel grid."""

    rgb: np.ndarray
    depth: np.ndarray


class DepthRegistration:
    """Precomputed undistortion maps for the NYU Kinect calibration; depth moves by `reproject_depth`."""

    def __init__(self, crop: bool = True) -> None:
        size = (cal.WIDTH, cal.HEIGHT)
        self.crop = crop
        self._rgb_maps = cv2.initUndistortRectifyMap(cal.K_RGB, cal.DIST_RGB, None, cal.K_RGB, size, cv2.CV_32FC1)
        self._depth_maps = cv2.initUndistortRectifyMap(
            cal.K_DEPTH, cal.DIST_DEPTH, None, cal.K_DEPTH, size, cv2.CV_32FC1
        )

    @property
    def K(self) -> np.ndarray:
        """Intrinsics (OpenCV pixel convention) of the registered output."""
        return cal.cropped_rgb_intrinsics() if self.crop else cal.K_RGB.copy()

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the registered output."""
        if self.crop:
            return cal.CROP_COLS.stop - cal.CROP_COLS.start, cal.CROP_ROWS.stop - cal.CROP_ROWS.start
        return cal.WIDTH, cal.HEIGHT

    def undistort_rgb(self, rgb: np.ndarray) -> np.ndarray:
        """Undistorted RGB on the ideal RGB pixel grid (full 640x480)."""
        return cv2.remap(rgb, *self._rgb_maps, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)

    def undistort_depth(self, depth_m: np.ndarray) -> np.ndarray:
        """Undistorted depth on the ideal depth pixel grid; nearest neighbour keeps edges sharp."""
        return cv2.remap(
            depth_m.astype(np.float32), *self._depth_maps, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT
        )

    def depth_into_rgb(self, depth_m: np.ndarray, motion: np.ndarray | None = None) -> np.ndarray:
        """Move undistorted depth-camera depth into the undistorted RGB camera with a z-buffer (full size).

        `motion` (4x4) takes points from the RGB camera at the depth timestamp to the RGB camera at
        the RGB timestamp; None treats both streams as simultaneous.
        """
        to_rgb = cal.depth_to_rgb() if motion is None else motion @ cal.depth_to_rgb()
        return reproject_depth(depth_m, cal.K_DEPTH, cal.K_RGB, to_rgb, (cal.WIDTH, cal.HEIGHT))

    def register_depth(self, raw_depth: np.ndarray, motion: np.ndarray | None = None) -> np.ndarray:
        """Raw disparity to registered depth (metres, cropped like `register`); `motion` as in `depth_into_rgb`."""
        depth = self.depth_into_rgb(self.undistort_depth(raw_to_metres(raw_depth)), motion)
        return depth[cal.CROP_ROWS, cal.CROP_COLS].copy() if self.crop else depth

    def register(self, rgb: np.ndarray, raw_depth: np.ndarray) -> RegisteredFrame:
        """Raw Kinect RGB + raw disparity to an undistorted, registered (and cropped) RGB-D pair."""
        rgb_u = self.undistort_rgb(rgb)
        if self.crop:
            rgb_u = rgb_u[cal.CROP_ROWS, cal.CROP_COLS].copy()
        return RegisteredFrame(rgb_u, self.register_depth(raw_depth))
