"""Human3.6M camera calibration recovered from the user's own VideoPose3D files.

VideoPose3D (Pavllo et al., CVPR 2019, ``facebookresearch/VideoPose3D``) hard-codes the
Human3.6M calibration in its source and writes ground-truth 2-D as the exact projection of
the 17 selected mocap joints (``data/prepare_data_h36m.py``: world → camera, then the
pinhole + radial k1..k3 + tangential p1, p2 model of ``common/camera.py``). Tessera does not
ship that calibration (the dataset licence forbids redistribution), so it is estimated
here, per (subject, camera index), from ``data_3d_h36m.npz`` and ``data_2d_h36m_gt.npz``:

1. DLT (Hartley & Zisserman, *Multiple View Geometry*, 2nd ed., alg. 7.1) on normalised
   points gives ``P = K [R | t]``; an RQ decomposition gives the initial focal length,
   centre and pose (distortion 0).
2. Levenberg–Marquardt (``scipy.optimize.least_squares``) refines rotation, camera
   position, ``f``, ``c`` and the five distortion coefficients on the pixel reprojection
   error of :func:`~.h36m.project_points` (the reader's own camera model).

Frames are subsampled evenly over all actions for the fit; the reprojection RMS is then
measured on every frame. A large RMS means the 2-D file is not an exact projection (e.g.
detections such as ``cpn_ft_h36m_dbb``) and is refused.

Image sizes cannot be recovered from points. They set only the normalisation
``x / w * 2 - (1, h / w)`` of the inputs; the default :data:`DEFAULT_RESOLUTION` is the
1000-pixel width of the Human3.6M videos (VideoPose3D's scale exactly; a view that is 1002
pixels high in the user's calibration is offset by 0.002 in normalised y), and
``resolution`` overrides it, per camera index if needed.

Notation: ``F`` frames, ``J = 17`` joints, ``N = F·J`` correspondences.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.linalg import rq
from scipy.optimize import least_squares
from scipy.spatial.transform import Rotation

from tessera.datamodules.common import DataError
from tessera.datamodules.common.io import atomic_write_text
from tessera.datamodules.pose.h36m import project_points, read_positions_2d, read_positions_3d

log = logging.getLogger(__name__)

DEFAULT_RESOLUTION = (1000, 1000)
MAX_REPROJECTION_PX = 1.0  # exact gt projections reach ~1e-3 px; detections several px
MAX_FIT_FRAMES = 256


def _hartley(points: np.ndarray) -> np.ndarray:
    """Similarity ``T (d+1, d+1)`` moving ``points (N, d)`` to mean 0, RMS norm √d."""
    d = points.shape[1]
    mean = points.mean(0)
    scale = np.sqrt(d) / max(np.sqrt(((points - mean) ** 2).sum(1).mean()), 1e-12)
    t = np.eye(d + 1) * scale
    t[:d, d] = -scale * mean
    t[d, d] = 1
    return t


def dlt(world: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Projection matrix ``P (3, 4)`` with ``pixels ~ P [world; 1]`` (normalised DLT).

    Args:
        world: ``(N, 3)`` points, N ≥ 6, not all on one plane.
        pixels: ``(N, 2)`` their images.
    """
    t3, t2 = _hartley(world), _hartley(pixels)
    xw = np.c_[world, np.ones(len(world))] @ t3.T  # (N, 4)
    xp = np.c_[pixels, np.ones(len(pixels))] @ t2.T  # (N, 3)
    zero = np.zeros_like(xw)
    rows = np.concatenate(
        [
            np.concatenate([zero, -xw, xp[:, 1:2] * xw], 1),
            np.concatenate([xw, zero, -xp[:, 0:1] * xw], 1),
        ]
    )  # (2N, 12)
    # Null vector from the 12 × 12 normal matrix (cheap for large N; well conditioned
    # after the normalisation): eigenvalues are the squared singular values of ``rows``.
    eigval, eigvec = np.linalg.eigh(rows.T @ rows)  # ascending
    if eigval[1] < 1e-14 * eigval[-1]:
        raise np.linalg.LinAlgError("degenerate correspondences (points on a plane?)")
    p_norm = eigvec[:, 0].reshape(3, 4)
    return np.linalg.inv(t2) @ p_norm @ t3


def decompose(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``P = K R [I | -C]`` → ``K (3, 3)`` (positive diagonal, ``K[2, 2] = 1``), world →
    camera rotation ``R (3, 3)`` (det +1) and camera position ``C (3,)``."""
    if np.linalg.det(p[:, :3]) < 0:
        p = -p  # the scale whose points lie in front of the camera
    k, r = rq(p[:, :3])
    sign = np.diag(np.sign(np.diag(k)))
    k, r = k @ sign, sign @ r
    centre = -np.linalg.solve(p[:, :3], p[:, 3])
    return k / k[2, 2], r, centre


def _unpack(x: np.ndarray):
    # rotation vector (world → camera), camera position (m), f, c, k1..k3, p1 p2
    return x[..., :3], x[..., 3:6], x[..., 6:8], x[..., 8:10], x[..., 10:13], x[..., 13:15]


def _project(x: np.ndarray, world: np.ndarray) -> np.ndarray:
    """Pixels ``(..., N, 2)`` of ``world (N, 3)`` for parameter vectors ``x (..., 15)``."""
    rotvec, centre, f, c, k, p = (v[..., None, :] for v in _unpack(x))  # (..., 1, n)
    rot = Rotation.from_rotvec(rotvec.reshape(-1, 3)).as_matrix()  # (B, 3, 3)
    rot = rot.reshape(*x.shape[:-1], 3, 3)
    x_cam = np.einsum("...ij,...nj->...ni", rot, world - centre)  # (..., N, 3)
    return project_points(x_cam, f, c, k, p)


def _jacobian(x: np.ndarray, world: np.ndarray) -> np.ndarray:
    """Forward-difference Jacobian ``(2N, 15)`` of the residuals, all columns in one pass."""
    step = 1.5e-8 * np.maximum(np.abs(x), 1.0)  # (15,)
    shifted = _project(x + np.diag(step), world)  # (15, N, 2)
    return ((shifted - _project(x, world)) / step[:, None, None]).reshape(len(x), -1).T


def fit_camera(world: np.ndarray, pixels: np.ndarray) -> dict:
    """One camera from ``world (N, 3)`` metres ↔ ``pixels (N, 2)``: DLT, then LM.

    Returns:
        ``{rotation (3, 3) camera → world, translation (3,) metres, focal_length (2,),
        center (2,), radial_distortion (3,), tangential_distortion (2,), rms_px}`` (on the
        given points) and ``x``, the fitted parameter vector.
    """
    k, r, centre = decompose(dlt(world, pixels))
    x0 = np.concatenate(
        [
            Rotation.from_matrix(r).as_rotvec(),
            centre,
            [k[0, 0], k[1, 1]],
            k[:2, 2],
            np.zeros(5),
        ]
    )
    fit = least_squares(
        lambda x: (_project(x, world) - pixels).ravel(),
        x0,
        jac=lambda x: _jacobian(x, world),
        method="lm",
        x_scale="jac",
        xtol=1e-10,
        ftol=1e-10,
        gtol=1e-10,
    )
    rotvec, centre, f, c, k, p = _unpack(fit.x)
    return {
        "rotation": Rotation.from_rotvec(rotvec).inv().as_matrix(),
        "translation": centre,
        "focal_length": f,
        "center": c,
        "radial_distortion": k,
        "tangential_distortion": p,
        "rms_px": float(np.sqrt((fit.fun**2).reshape(-1, 2).sum(1).mean())),
        "x": fit.x,
    }


def _views(positions_3d: dict, positions_2d: dict, subject: str, cam: int):
    """``[(world (T, 17, 3), pixels (T, 17, 2))]`` of every action, finite frames only."""
    out = []
    for action, pos in positions_3d[subject].items():
        views = positions_2d[subject].get(action)
        if views is None or cam >= len(views):
            continue
        n = min(len(pos), len(views[cam]))
        world, pixels = pos[:n].astype(np.float64), views[cam][:n].astype(np.float64)
        ok = np.isfinite(world).all((1, 2)) & np.isfinite(pixels).all((1, 2))
        if ok.any():
            out.append((world[ok], pixels[ok]))
    return out


def _resolution(resolution, cam: int) -> tuple[int, int]:
    if resolution is None:
        return DEFAULT_RESOLUTION
    res = np.asarray(resolution, dtype=int)
    if res.shape == (2,):
        return int(res[0]), int(res[1])
    if res.ndim == 2 and res.shape[1] == 2 and cam < len(res):
        return int(res[cam, 0]), int(res[cam, 1])
    raise ValueError(f"resolution must be [w, h] or one [w, h] per camera, got {resolution!r}")


def recover_cameras(
    path_3d: str | Path,
    path_2d: str | Path,
    resolution: Sequence[int] | Sequence[Sequence[int]] | None = None,
    max_rms: float = MAX_REPROJECTION_PX,
    max_frames: int = MAX_FIT_FRAMES,
) -> dict:
    """A ``cameras.json`` dict (see :mod:`.h36m`) fitted to exact 2-D projections.

    Args:
        path_3d: ``data_3d_h36m.npz`` (world metres).
        path_2d: ground-truth ``data_2d_h36m_gt.npz`` (pixels, 4 views per action).
        resolution: ``[w, h]`` for every camera or one per camera index (image sizes are
            not recoverable from points); None = :data:`DEFAULT_RESOLUTION`.
        max_rms: largest accepted reprojection RMS in pixels (on all frames).
        max_frames: frames per (subject, camera) used for the fit, evenly spread over the
            actions.

    Raises:
        DataError: when a camera cannot be fitted or its RMS exceeds ``max_rms`` (the 2-D
            file holds detections, not ground truth).
    """
    path_3d, path_2d = Path(path_3d), Path(path_2d)
    positions_3d = read_positions_3d(path_3d)
    positions_2d, meta = read_positions_2d(path_2d)
    if meta.get("layout_name", "h36m") != "h36m":
        raise DataError(
            path_2d,
            f"layout {meta.get('layout_name')!r} cannot calibrate the cameras",
            "pass VideoPose3D's ground-truth data_2d_h36m_gt.npz for calibration",
        )
    intrinsics, extrinsics = {}, {}
    for subject in sorted(set(positions_3d) & set(positions_2d)):
        n_cams = max((len(v) for v in positions_2d[subject].values()), default=0)
        extrinsics[subject] = []
        for cam in range(n_cams):
            pairs = _views(positions_3d, positions_2d, subject, cam)
            world = np.concatenate([w for w, _ in pairs]) if pairs else np.zeros((0, 17, 3))
            pixels = np.concatenate([p for _, p in pairs]) if pairs else np.zeros((0, 17, 2))
            if len(world) > max_frames:
                keep = np.unique(np.linspace(0, len(world) - 1, max_frames).round().astype(int))
                world, pixels = world[keep], pixels[keep]
            world, pixels = world.reshape(-1, 3), pixels.reshape(-1, 2)  # (N, 3), (N, 2)
            try:
                if len(world) < 6:
                    raise np.linalg.LinAlgError(f"only {len(world)} 3-D/2-D correspondences")
                cal = fit_camera(world, pixels)
            except np.linalg.LinAlgError as err:
                raise DataError(
                    path_2d,
                    f"cannot calibrate {subject} camera {cam}: {err}",
                    "provide cameras.json with the calibration",
                ) from err
            sq = sum(
                float(((_project(cal["x"], w.reshape(-1, 3)) - p.reshape(-1, 2)) ** 2).sum())
                for w, p in pairs
            )
            rms = float(np.sqrt(sq / sum(w.shape[0] * w.shape[1] for w, _ in pairs)))
            log.info("calibrated %s camera %d: reprojection RMS %.4f px", subject, cam, rms)
            if not rms <= max_rms:
                raise DataError(
                    path_2d,
                    f"camera calibration recovered for {subject} camera {cam} reprojects "
                    f"with an RMS of {rms:.2f} px (> {max_rms} px): these 2-D keypoints are "
                    "not exact projections of the 3-D joints (detections?)",
                    "pass the ground-truth 2-D file (data_2d_h36m_gt.npz) for calibration "
                    "(calibration_keypoints=gt), or put the calibration in cameras.json",
                )
            cid = f"{subject}_cam{cam}"
            w, h = _resolution(resolution, cam)
            intrinsics[cid] = {
                "res_w": w,
                "res_h": h,
                "center": cal["center"].tolist(),
                "focal_length": cal["focal_length"].tolist(),
                "radial_distortion": cal["radial_distortion"].tolist(),
                "tangential_distortion": cal["tangential_distortion"].tolist(),
            }
            quat = Rotation.from_matrix(cal["rotation"]).as_quat(scalar_first=True)
            extrinsics[subject].append(
                {
                    "id": cid,
                    "orientation": (quat if quat[0] >= 0 else -quat).tolist(),
                    "translation": (cal["translation"] * 1000).tolist(),
                    "reprojection_rms_px": rms,
                }
            )
    if not extrinsics:
        raise DataError(path_2d, f"no subject in both {path_3d.name} and {path_2d.name}")
    return {
        "intrinsics": intrinsics,
        "extrinsics": extrinsics,
        "recovered_from": [path_3d.name, path_2d.name],
    }


def cameras_file(
    root: str | Path,
    path_3d: str | Path,
    path_2d: str | Path,
    resolution: Sequence[int] | Sequence[Sequence[int]] | None = None,
    max_rms: float = MAX_REPROJECTION_PX,
) -> Path:
    """``root/cameras.json``: the user's own if present, else recovered from ``path_3d`` and
    the ground-truth ``path_2d`` and cached there (atomic write, computed once)."""
    out = Path(root) / "cameras.json"
    if out.is_file():
        return out
    if not Path(path_2d).is_file():
        raise DataError(
            out,
            f"camera file not found and no {Path(path_2d).name} to recover it from",
            f"put VideoPose3D's ground-truth 2-D file {Path(path_2d).name} next to "
            f"{Path(path_3d).name} (the cameras are calibrated from it once), or provide "
            "cameras.json (see docs/apps/pose.md)",
        )
    cameras = recover_cameras(path_3d, path_2d, resolution, max_rms)
    atomic_write_text(out, json.dumps(cameras, indent=1))
    rms = {
        f"{s}/cam{c}": round(v["reprojection_rms_px"], 5)
        for s, views in cameras["extrinsics"].items()
        for c, v in enumerate(views)
    }
    log.warning(
        "no cameras.json: calibration recovered from %s and %s, reprojection RMS (px) %s; "
        "saved to %s",
        Path(path_3d).name,
        Path(path_2d).name,
        rms,
        out,
    )
    return out
