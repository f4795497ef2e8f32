"""Python API: ``load(name_or_path)`` -> :class:`Detector`, one point cloud -> 3-D boxes.

>>> detector = load("detection3d-dsvt-tiny")          # or a .safetensors / .ckpt file
>>> result = detector("000123.bin")                    # also .npy, .pcd or an (N, 4) array
>>> result["boxes"], result["names"], result["scores"], result["notes"]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from tessera.apps.common.weights import read_weights, save_weights
from tessera.apps.detection3d.module import Detection3DModule
from tessera.datamodules.detection3d.points import clean_points, read_points

TASK = "detection3d"


class Detector:
    """A trained detector on one device.

    Attributes:
        class_names, point_cloud_range: what the model was trained with.
    """

    def __init__(self, module: Detection3DModule, device: str = "cpu"):
        self.module = module.eval().to(device)
        self.class_names = list(module.class_names)
        self.point_cloud_range = list(module.hparams.point_cloud_range)

    @torch.no_grad()
    def __call__(
        self, points: str | Path | np.ndarray, score_threshold: float = 0.3, intensity: str = "auto"
    ) -> dict:
        """Detect objects in one cloud.

        Args:
            points: a ``.bin`` / ``.npy`` / ``.pcd`` file or an (N, 4) / (N, 3) array in the
                LiDAR frame (x forward, y left, z up).
            score_threshold: drop detections below this score.
            intensity: ``auto`` (0..255 -> [0, 1]), ``keep``, ``divide255`` or ``zero``.

        Returns:
            ``boxes (D, 7)`` [x, y, z, dx, dy, dz, heading], ``scores (D,)``, ``labels (D,)``,
            ``names``, ``points`` (the cloud used) and ``notes`` (what was done to the input).
        """
        if isinstance(points, (str, Path)):
            cloud, notes = read_points(points, intensity)
        else:
            arr = np.asarray(points, dtype=np.float32)
            if arr.ndim != 2 or arr.shape[1] not in (3, 4):
                raise ValueError(f"points must be (N, 4) or (N, 3), got shape {arr.shape}")
            if arr.shape[1] == 3:
                arr = np.concatenate([arr, np.zeros((len(arr), 1), np.float32)], 1)
            cloud, notes = clean_points(arr, intensity)
        r = np.asarray(self.point_cloud_range)
        inside = ((cloud[:, :3] >= r[:3]) & (cloud[:, :3] < r[3:])).all(1)
        if len(cloud) and not inside.any():
            notes.append(f"no point lies inside the model's range {self.point_cloud_range}")
        det = self.module.detect([torch.from_numpy(cloud[inside])])[0]
        keep = det["scores"] >= score_threshold
        return {
            "boxes": det["boxes"][keep],
            "scores": det["scores"][keep],
            "labels": det["labels"][keep],
            "names": [self.class_names[int(c)] for c in det["labels"][keep]],
            "points": cloud,
            "notes": notes,
        }


def load(name_or_path: str | Path, device: str = "cpu") -> Detector:
    """A :class:`Detector` from a registry name, a ``.safetensors`` file written by
    :func:`save` or a Lightning ``.ckpt`` of this app (read with ``weights_only=True``)."""
    weights = read_weights(name_or_path, TASK)
    hparams = {k: v for k, v in weights.hparams.items() if k != "weights"}
    module = Detection3DModule(**hparams)
    try:
        module.load_state_dict(weights.state_dict, strict=True)
    except RuntimeError as err:
        raise ValueError(
            f"{weights.path}: weights do not fit the detector its config describes ({err})"
        ) from err
    return Detector(module, device)


def save(path: str | Path, module: Detection3DModule) -> Path:
    """Write ``module`` as a self-describing safetensors file."""
    hparams = {k: v for k, v in dict(module.hparams).items() if k != "weights"}
    data = {
        "class_names": module.class_names,
        "point_cloud_range": list(module.hparams.point_cloud_range),
    }
    return save_weights(path, module, task=TASK, data=data, hparams=hparams)
