"""Human3.6M as VideoPose3D prepares it (Pavllo et al., CVPR 2019,
``facebookresearch/VideoPose3D``: ``data/prepare_data_h36m.py``, ``common/h36m_dataset.py``,
``common/camera.py``).

- ``data_3d_h36m.npz``: ``positions_3d`` = pickled dict ``{subject: {action: (T, 32, 3)}}``,
  world coordinates in metres (17-joint arrays are accepted too).
- ``data_2d_h36m_<name>.npz`` (``gt``, ``cpn_ft_h36m_dbb``, ...): ``positions_2d`` =
  ``{subject: {action: [4 × (T, 17, 2)]}}`` pixels, one array per camera, and ``metadata`` =
  ``{layout_name, num_joints, keypoints_symmetry}``. Both are ``np.savez_compressed`` files of
  object arrays (read with ``allow_pickle=True``; only these trusted files are unpickled).
- Cameras: VideoPose3D hard-codes the calibration; here it is a ``cameras.json`` next to the
  npz files, in the same structure: ``intrinsics[camera_id] = {res_w, res_h, center,
  focal_length, radial_distortion, tangential_distortion}`` (pixels) and
  ``extrinsics[subject] = [{id, orientation (w, x, y, z quaternion, camera → world),
  translation (millimetres)}, ...]`` in the order of the 2-D arrays. Without one,
  :mod:`.calibration` recovers it from the 3-D and ground-truth 2-D files (and caches it).

Targets are camera-frame joints, root-relative (the root itself is kept at 0); inputs are
2-D pixels mapped by :func:`normalize_screen_coordinates` to ``[-1, 1]`` along the width.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tessera.datamodules.common import DataError
from tessera.datamodules.pose.skeleton import H36M_32_TO_17, coco_to_h36m

TRAIN_SUBJECTS = ("S1", "S5", "S6", "S7", "S8")
TEST_SUBJECTS = ("S9", "S11")


def _load_npz_dict(path: Path, key: str):
    if not path.is_file():
        raise DataError(path, "file not found", "prepare it with VideoPose3D's data/prepare_data_*")
    try:
        with np.load(path, allow_pickle=True) as npz:
            if key not in npz.files:
                raise DataError(path, f"no {key!r} array (has {npz.files})")
            value = npz[key].item()
            meta = npz["metadata"].item() if "metadata" in npz.files else None
    except DataError:
        raise
    except Exception as err:  # truncated zip, not an npz, unpicklable content
        raise DataError(path, f"cannot read as npz ({err.__class__.__name__}: {err})") from err
    if not isinstance(value, dict):
        raise DataError(path, f"{key} must be a dict {{subject: {{action: array}}}}")
    return value, meta


def read_positions_3d(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """``{subject: {action: (T, 17, 3)}}`` world metres (32 mocap joints reduced to 17)."""
    path = Path(path)
    data, _ = _load_npz_dict(path, "positions_3d")
    out = {}
    for subject, actions in data.items():
        out[subject] = {}
        for action, pos in actions.items():
            pos = np.asarray(pos, dtype=np.float32)
            if pos.ndim != 3 or pos.shape[1] not in (32, 17) or pos.shape[2] != 3:
                raise DataError(
                    path,
                    f"positions_3d[{subject}][{action}] has shape {pos.shape}, "
                    "expected (T, 32, 3) or (T, 17, 3)",
                )
            out[subject][action] = pos[:, list(H36M_32_TO_17)] if pos.shape[1] == 32 else pos
    return out


def read_positions_2d(path: str | Path) -> tuple[dict, dict]:
    """``({subject: {action: [cameras × (T, 17, 2)]}}, metadata)`` in pixels, H36M order.

    A file whose ``metadata.layout_name`` is ``coco`` (e.g. Detectron COCO keypoints) is
    mapped to the H36M order with :func:`~.skeleton.coco_to_h36m`.
    """
    path = Path(path)
    data, meta = _load_npz_dict(path, "positions_2d")
    if not isinstance(meta, dict) or "num_joints" not in meta:
        raise DataError(
            path,
            "no metadata with num_joints / keypoints_symmetry",
            "VideoPose3D's 2-D files carry metadata={'layout_name', 'num_joints', "
            "'keypoints_symmetry'}",
        )
    layout = meta.get("layout_name", "h36m")
    if layout not in ("h36m", "coco"):
        raise DataError(path, f"layout_name {layout!r} is not supported (h36m or coco)")
    out = {}
    for subject, actions in data.items():
        out[subject] = {}
        for action, cams in actions.items():
            arrays = []
            for c, kp in enumerate(cams):
                kp = np.asarray(kp, dtype=np.float32)
                if kp.ndim != 3 or kp.shape[1] != meta["num_joints"] or kp.shape[2] < 2:
                    raise DataError(
                        path,
                        f"positions_2d[{subject}][{action}][{c}] has shape {kp.shape}, "
                        f"expected (T, {meta['num_joints']}, 2)",
                    )
                kp = kp[..., :2]
                arrays.append(coco_to_h36m(kp).astype(np.float32) if layout == "coco" else kp)
            out[subject][action] = arrays
    return out, meta


@dataclass(frozen=True)
class Camera:
    """One calibrated view: intrinsics (pixels) and extrinsics (camera → world)."""

    id: str
    res_w: int
    res_h: int
    center: np.ndarray
    focal_length: np.ndarray
    radial_distortion: np.ndarray
    tangential_distortion: np.ndarray
    orientation: np.ndarray  # quaternion (w, x, y, z)
    translation: np.ndarray  # metres

    def normalized_intrinsics(self) -> tuple[np.ndarray, np.ndarray]:
        """Focal length and centre in the normalised screen frame (as VideoPose3D)."""
        f = self.focal_length / self.res_w * 2
        c = normalize_screen_coordinates(self.center, self.res_w, self.res_h)
        return f, c


def read_cameras(path: str | Path) -> dict[str, list[Camera]]:
    """``{subject: [Camera, ...]}`` from ``cameras.json`` (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            path,
            "camera file not found",
            "put the Human3.6M calibration in cameras.json next to the npz files "
            "(intrinsics per camera id, extrinsics per subject; see docs/apps/pose.md)",
        )
    try:
        raw = json.loads(path.read_text())
        intr = raw["intrinsics"]
        out = {}
        for subject, views in raw["extrinsics"].items():
            cams = []
            for v in views:
                i = intr[str(v["id"])]
                cams.append(
                    Camera(
                        str(v["id"]),
                        int(i["res_w"]),
                        int(i["res_h"]),
                        np.asarray(i["center"], np.float64),
                        np.asarray(i["focal_length"], np.float64),
                        np.asarray(i.get("radial_distortion", [0, 0, 0]), np.float64),
                        np.asarray(i.get("tangential_distortion", [0, 0]), np.float64),
                        np.asarray(v["orientation"], np.float64),
                        np.asarray(v["translation"], np.float64) / 1000.0,
                    )
                )
            out[subject] = cams
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(path, f"malformed camera file ({err.__class__.__name__}: {err})") from err
    return out


def qrot(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate ``v (..., 3)`` by the unit quaternion ``q (4,)`` (w, x, y, z)."""
    w, qv = q[0], q[1:]
    uv = np.cross(qv, v)
    uuv = np.cross(qv, uv)
    return v + 2 * (w * uv + uuv)


def qinverse(q: np.ndarray) -> np.ndarray:
    return np.concatenate([q[:1], -q[1:]])


def world_to_camera(x: np.ndarray, cam: Camera) -> np.ndarray:
    """World ``(..., 3)`` to the camera frame: ``R⁻¹ (x - t)``."""
    return qrot(qinverse(cam.orientation), x - cam.translation)


def camera_to_world(x: np.ndarray, cam: Camera) -> np.ndarray:
    return qrot(cam.orientation, x) + cam.translation


def project_points(
    x_cam: np.ndarray,
    focal_length: np.ndarray,
    center: np.ndarray,
    radial_distortion: np.ndarray,
    tangential_distortion: np.ndarray,
) -> np.ndarray:
    """Camera-frame ``(..., 3)`` to pixels ``(..., 2)`` with radial (k1..k3) and tangential
    (p1, p2) distortion (the Human3.6M camera model; normalised image points clamped to
    [-1, 1] as VideoPose3D does)."""
    xy = np.clip(x_cam[..., :2] / np.clip(x_cam[..., 2:3], 1e-6, None), -1, 1)
    r2 = (xy**2).sum(-1, keepdims=True)
    k, p = np.asarray(radial_distortion), np.asarray(tangential_distortion)
    radial = 1 + k[..., 0:1] * r2 + k[..., 1:2] * r2**2 + k[..., 2:3] * r2**3
    tan = (p * xy).sum(-1, keepdims=True)
    xy_d = xy * (radial + tan) + p * r2
    return focal_length * xy_d + center


def project(x_cam: np.ndarray, cam: Camera) -> np.ndarray:
    """Camera-frame ``(..., 3)`` to pixels with ``cam``'s intrinsics (:func:`project_points`)."""
    return project_points(
        x_cam, cam.focal_length, cam.center, cam.radial_distortion, cam.tangential_distortion
    )


def normalize_screen_coordinates(x: np.ndarray, w: int, h: int) -> np.ndarray:
    """Pixels to ``[-1, 1]`` along the width, aspect ratio kept: ``x / w * 2 - (1, h / w)``."""
    return np.asarray(x) / w * 2 - np.array([1, h / w])


def image_coordinates(x: np.ndarray, w: int, h: int) -> np.ndarray:
    """Inverse of :func:`normalize_screen_coordinates`."""
    return (np.asarray(x) + np.array([1, h / w])) * w / 2


@dataclass
class Sequence:
    """One (subject, action, camera) clip: normalised 2-D inputs and root-relative 3-D."""

    subject: str
    action: str
    camera: int
    poses_2d: np.ndarray  # (T, 17, 2) normalised screen coordinates
    poses_3d: np.ndarray  # (T, 17, 3) camera frame, root-relative, metres


def build_sequences(
    positions_3d: dict,
    positions_2d: dict,
    cameras: dict[str, list[Camera]],
    subjects,
    path_2d: str | Path = "positions_2d",
) -> list[Sequence]:
    """Pair every (subject, action, camera) of ``subjects`` as VideoPose3D's ``fetch`` does:
    2-D trimmed to the mocap length, 3-D moved to each camera and made root-relative."""
    out = []
    for subject in subjects:
        if subject not in positions_3d:
            raise DataError(
                path_2d,
                f"subject {subject} not in the 3-D file",
                f"available: {sorted(positions_3d)}",
            )
        if subject not in positions_2d:
            raise DataError(path_2d, f"subject {subject} has no 2-D detections")
        if subject not in cameras:
            raise DataError(
                "cameras.json",
                f"no extrinsics for subject {subject}",
                "delete a recovered cameras.json to calibrate again from the current files",
            )
        for action, pos3d in positions_3d[subject].items():
            if action not in positions_2d[subject]:
                raise DataError(path_2d, f"{subject}/{action} is missing from the 2-D file")
            views = positions_2d[subject][action]
            if len(views) != len(cameras[subject]):
                raise DataError(
                    path_2d,
                    f"{subject}/{action} has {len(views)} camera views but cameras.json "
                    f"lists {len(cameras[subject])} for {subject}",
                )
            for c, (kp, cam) in enumerate(zip(views, cameras[subject], strict=True)):
                if len(kp) < len(pos3d):
                    raise DataError(
                        path_2d,
                        f"{subject}/{action} camera {c}: {len(kp)} 2-D frames for "
                        f"{len(pos3d)} mocap frames (2-D must cover the mocap)",
                    )
                kp = kp[: len(pos3d)]
                cam3d = world_to_camera(pos3d.astype(np.float64), cam)
                cam3d[:, 1:] -= cam3d[:, :1]
                cam3d[:, 0] = 0
                out.append(
                    Sequence(
                        subject,
                        action,
                        c,
                        normalize_screen_coordinates(kp, cam.res_w, cam.res_h).astype(np.float32),
                        cam3d.astype(np.float32),
                    )
                )
    return out


def action_group(action: str) -> str:
    """``"Walking 1"`` → ``"Walking"`` (VideoPose3D groups takes by the first word)."""
    return action.split(" ")[0]
