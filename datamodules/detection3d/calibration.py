"""KITTI calibration files and the camera <-> LiDAR box conversion.

A KITTI ``calib/<id>.txt`` (devkit ``readme.txt``, "object development kit") holds one
``key: values`` line each for ``P0``..``P3`` (3x4 projections of the rectified cameras),
``R0_rect`` (3x3 rectifying rotation), ``Tr_velo_to_cam`` (3x4 LiDAR -> reference camera)
and ``Tr_imu_to_velo``. A LiDAR point ``x`` maps to the image as
``P2 @ R0_rect @ Tr_velo_to_cam @ x`` (homogeneous).

Boxes: KITTI labels give ``(x, y, z)`` in rectified camera coordinates at the *bottom* centre,
dimensions ``h, w, l`` and yaw ``ry`` about the camera y axis (pointing down). LiDAR boxes are
``(x, y, z_centre, dx, dy, dz, heading)`` with x forward, y left, z up (OpenPCDet's
convention): ``dx = l, dy = w, dz = h`` and ``heading = -(ry + pi/2)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tessera.datamodules.common import DataError

REQUIRED_KEYS = {"P2": 12, "R0_rect": 9, "Tr_velo_to_cam": 12}


@dataclass
class Calibration:
    """The three matrices a KITTI frame needs (float64)."""

    P2: np.ndarray  # (3, 4)
    R0: np.ndarray  # (3, 3)
    V2C: np.ndarray  # (3, 4)

    @classmethod
    def from_file(cls, path: str | Path) -> Calibration:
        """Parse a KITTI calib file; a malformed line raises :class:`DataError` naming it."""
        path = Path(path)
        values: dict[str, np.ndarray] = {}
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            key, sep, rest = line.partition(":")
            if not sep:
                raise DataError(
                    path,
                    f"line {number} has no 'key:' ({line[:40]!r})",
                    "calib lines look like 'P2: v1 ... v12'",
                )
            try:
                values[key.strip()] = np.array(rest.split(), dtype=np.float64)
            except ValueError:
                raise DataError(
                    path,
                    f"line {number} ({key.strip()}) has a non-numeric value",
                    "every calib value must be a number",
                ) from None
        for key, size in REQUIRED_KEYS.items():
            if key not in values:
                # some KITTI derivatives spell it R_rect / Tr_velo_cam
                alias = {"R0_rect": "R_rect", "Tr_velo_to_cam": "Tr_velo_cam"}.get(key)
                if alias in values:
                    values[key] = values[alias]
                else:
                    raise DataError(
                        path,
                        f"missing the {key} line",
                        "a KITTI calib file has P0..P3, R0_rect, Tr_velo_to_cam",
                    )
            if values[key].size != size:
                raise DataError(path, f"{key} has {values[key].size} values, expected {size}")
        return cls(
            values["P2"].reshape(3, 4),
            values["R0_rect"].reshape(3, 3),
            values["Tr_velo_to_cam"].reshape(3, 4),
        )

    def lidar_to_rect(self, pts: np.ndarray) -> np.ndarray:
        """(N, 3) LiDAR -> (N, 3) rectified camera."""
        hom = np.concatenate([pts[:, :3], np.ones((len(pts), 1))], 1)
        return (hom @ self.V2C.T) @ self.R0.T

    def rect_to_lidar(self, pts: np.ndarray) -> np.ndarray:
        """(N, 3) rectified camera -> (N, 3) LiDAR (inverts R0 and the rigid Tr_velo_to_cam)."""
        ref = pts[:, :3] @ np.linalg.inv(self.R0).T
        rot, trans = self.V2C[:, :3], self.V2C[:, 3]
        return (ref - trans) @ np.linalg.inv(rot).T

    def rect_to_image(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 3) rectified camera -> pixel coordinates (N, 2) and depth (N,)."""
        hom = np.concatenate([pts[:, :3], np.ones((len(pts), 1))], 1) @ self.P2.T
        depth = hom[:, 2]
        return hom[:, :2] / np.where(np.abs(depth) < 1e-9, 1e-9, depth)[:, None], depth

    def to_text(self) -> str:
        """A full KITTI calib file (P0..P3, R0_rect, Tr_velo_to_cam, Tr_imu_to_velo)."""
        fmt = lambda a: " ".join(f"{v:.12e}" for v in np.asarray(a).ravel())  # noqa: E731
        p0 = self.P2.copy()
        p0[:, 3] = 0.0
        lines = [
            f"P0: {fmt(p0)}",
            f"P1: {fmt(p0)}",
            f"P2: {fmt(self.P2)}",
            f"P3: {fmt(self.P2)}",
            f"R0_rect: {fmt(self.R0)}",
            f"Tr_velo_to_cam: {fmt(self.V2C)}",
            f"Tr_imu_to_velo: {fmt(np.eye(3, 4))}",
        ]
        return "\n".join(lines) + "\n"


def camera_boxes_to_lidar(
    loc: np.ndarray, dims_hwl: np.ndarray, ry: np.ndarray, calib: Calibration
) -> np.ndarray:
    """KITTI ``location (N, 3)``, ``h w l (N, 3)``, ``ry (N,)`` -> LiDAR boxes (N, 7)."""
    xyz = calib.rect_to_lidar(loc)
    h, w, l = dims_hwl[:, 0], dims_hwl[:, 1], dims_hwl[:, 2]  # noqa: E741
    xyz[:, 2] += h / 2
    return np.concatenate([xyz, np.stack([l, w, h, limit_period(-(ry + np.pi / 2))], 1)], 1)


def lidar_boxes_to_camera(boxes: np.ndarray, calib: Calibration):
    """LiDAR boxes (N, 7) -> KITTI ``location (N, 3)`` (bottom centre), ``h w l (N, 3)``, ``ry``."""
    bottom = boxes[:, :3].copy()
    bottom[:, 2] -= boxes[:, 5] / 2
    loc = calib.lidar_to_rect(bottom)
    dims = np.stack([boxes[:, 5], boxes[:, 4], boxes[:, 3]], 1)
    ry = limit_period(-boxes[:, 6] - np.pi / 2)
    return loc, dims, ry


def limit_period(angle: np.ndarray, offset: float = 0.5, period: float = 2 * np.pi):
    """Wrap angles into ``[-offset * period, (1 - offset) * period)``."""
    return angle - np.floor(angle / period + offset) * period


def box_corners_lidar(boxes: np.ndarray) -> np.ndarray:
    """LiDAR boxes (N, 7) -> corners (N, 8, 3): bottom face then top face."""
    signs = (
        np.array(
            [
                [1, 1, -1],
                [1, -1, -1],
                [-1, -1, -1],
                [-1, 1, -1],
                [1, 1, 1],
                [1, -1, 1],
                [-1, -1, 1],
                [-1, 1, 1],
            ],
            dtype=np.float64,
        )
        / 2
    )
    local = signs[None] * boxes[:, None, 3:6]
    c, s = np.cos(boxes[:, 6]), np.sin(boxes[:, 6])
    x = local[..., 0] * c[:, None] - local[..., 1] * s[:, None]
    y = local[..., 0] * s[:, None] + local[..., 1] * c[:, None]
    return np.stack([x, y, local[..., 2]], -1) + boxes[:, None, :3]


def image_boxes(boxes: np.ndarray, calib: Calibration, image_shape: tuple[int, int] | None):
    """2-D boxes (N, 4) ``x1 y1 x2 y2`` of LiDAR boxes projected with P2, clipped to the image
    (``(height, width)``), as OpenPCDet's ``boxes3d_kitti_camera_to_imageboxes``."""
    if len(boxes) == 0:
        return np.zeros((0, 4))
    corners = box_corners_lidar(boxes).reshape(-1, 3)
    uv, _ = calib.rect_to_image(calib.lidar_to_rect(corners))
    uv = uv.reshape(-1, 8, 2)
    out = np.concatenate([uv.min(1), uv.max(1)], 1)
    if image_shape is not None:
        h, w = image_shape
        out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, w - 1)
        out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, h - 1)
    return out


def fov_mask(points: np.ndarray, calib: Calibration, image_shape: tuple[int, int]) -> np.ndarray:
    """Points that project inside the image with positive depth (the usual KITTI FOV crop)."""
    uv, depth = calib.rect_to_image(calib.lidar_to_rect(points[:, :3]))
    h, w = image_shape
    return (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h) & (depth >= 0)
