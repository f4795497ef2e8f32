"""Point-cloud files: KITTI ``.bin``, ``.npy`` (N x 4 or N x 3) and PCD (ASCII or binary).

Every reader returns ``(points (N, 4) float32 x, y, z, intensity, notes)``; ``notes`` says
what was done to the cloud (non-finite points dropped, intensity rescaled) so a caller can
tell the user. Intensity conventions differ: KITTI stores reflectance in [0, 1], many PCD
files 0..255 (``intensity="auto"`` divides by 255 when the maximum is above 1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from tessera.datamodules.common import DataError

POINT_SUFFIXES = (".bin", ".npy", ".pcd")
IntensityMode = Literal["auto", "keep", "divide255", "zero"]


def read_bin(path: str | Path) -> np.ndarray:
    """KITTI velodyne scan: float32 records ``x y z intensity`` (16 bytes each)."""
    path = Path(path)
    size = path.stat().st_size
    if size % 16:
        raise DataError(
            path,
            f"size {size} bytes is not a multiple of 16 (float32 x, y, z, "
            "intensity per point): the file is truncated or not a KITTI .bin",
            "re-copy the file; other layouts need .npy or .pcd",
        )
    return np.fromfile(path, dtype=np.float32).reshape(-1, 4)


def read_npy(path: str | Path) -> np.ndarray:
    path = Path(path)
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as err:
        raise DataError(path, f"not a readable .npy array ({err})") from None
    if arr.ndim != 2 or arr.shape[1] < 3:
        raise DataError(path, f"shape {arr.shape}, expected (N, 4) x y z intensity or (N, 3)")
    if arr.shape[1] == 3:
        arr = np.concatenate([arr, np.zeros((len(arr), 1), arr.dtype)], 1)
    return arr[:, :4].astype(np.float32)


def read_pcd(path: str | Path) -> np.ndarray:
    """PCD v0.7 (``ascii``, ``binary`` or ``binary_compressed``) through pypcd4; the intensity
    field may be called ``intensity``, ``i``, ``reflectance`` or ``remission`` (else zero)."""
    from pypcd4 import PointCloud

    path = Path(path)
    try:
        cloud = PointCloud.from_path(path)
    except Exception as err:
        raise DataError(
            path, f"not a readable PCD file ({err.__class__.__name__}: {err})"
        ) from None
    fields = list(cloud.fields)
    if not {"x", "y", "z"} <= set(fields):
        raise DataError(path, f"PCD fields {fields} lack x, y, z")
    cols = ["x", "y", "z"]
    for name in ("intensity", "i", "reflectance", "remission"):
        if name in fields:
            cols.append(name)
            break
    arr = cloud.numpy(cols).astype(np.float32)
    if arr.shape[1] == 3:
        arr = np.concatenate([arr, np.zeros((len(arr), 1), np.float32)], 1)
    return arr


def clean_points(
    points: np.ndarray, intensity: IntensityMode = "keep"
) -> tuple[np.ndarray, list[str]]:
    """Drop non-finite points and normalise intensity; returns the cloud and what was done."""
    notes = []
    finite = np.isfinite(points).all(1)
    if not finite.all():
        notes.append(f"dropped {int((~finite).sum())} points with NaN/inf coordinates")
        points = points[finite]
    if intensity == "zero":
        points = points.copy()
        points[:, 3] = 0.0
        notes.append("intensity set to 0")
    elif intensity == "divide255" or (
        intensity == "auto" and len(points) and points[:, 3].max() > 1.0
    ):
        points = points.copy()
        peak = float(points[:, 3].max()) if len(points) else 0.0
        points[:, 3] = np.clip(points[:, 3] / 255.0, 0.0, 1.0)
        notes.append(
            f"intensity divided by 255 (max was {peak:g}; the model expects [0, 1] like KITTI)"
        )
    elif intensity == "auto":
        notes.append("intensity already in [0, 1], kept")
    elif intensity != "keep":
        raise ValueError(f"intensity must be auto, keep, divide255 or zero, got {intensity!r}")
    return points, notes


def read_points(
    path: str | Path, intensity: IntensityMode = "auto"
) -> tuple[np.ndarray, list[str]]:
    """Read any supported point-cloud file -> ``(points (N, 4) float32, notes)``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "no such file")
    suffix = path.suffix.lower()
    if suffix == ".bin":
        points = read_bin(path)
    elif suffix == ".npy":
        points = read_npy(path)
    elif suffix == ".pcd":
        points = read_pcd(path)
    else:
        raise DataError(
            path,
            f"unsupported point-cloud suffix {suffix!r}",
            f"use one of {', '.join(POINT_SUFFIXES)}",
        )
    return clean_points(points, intensity)
