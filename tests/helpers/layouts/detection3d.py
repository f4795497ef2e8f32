"""KITTI 3-D object and OpenPCDet custom-dataset layouts, written from their documentation.

- KITTI (``devkit_object/readme.txt`` of the KITTI 3-D object benchmark; OpenPCDet
  ``docs/GETTING_STARTED.md`` for the folder tree)::

      ImageSets/{train,val,test}.txt            6-digit ids, one per line
      training/velodyne/000000.bin              float32 x, y, z, reflectance (16 bytes/point)
      training/label_2/000000.txt               type truncated occluded alpha x1 y1 x2 y2
                                                h w l x y z rotation_y   (camera rect frame)
      training/calib/000000.txt                 P0: P1: P2: P3: R0_rect: Tr_velo_to_cam:
                                                Tr_imu_to_velo:  (row-major)
      training/image_2/000000.png               1242 x 375 colour image
      testing/{velodyne,calib,image_2}/         same, without labels

  The calibration below is the one of KITTI training frame 000000 (rounded); labels include
  ``DontCare`` regions (``-1 -1 -10 ... -1000 -1000 -1000 -10``), Vans and Person_sitting.
- OpenPCDet custom (``docs/CUSTOM_DATASET_TUTORIAL.md``)::

      ImageSets/{train,val}.txt
      points/000000.npy                         (N, 4) float32 x, y, z, intensity
      labels/000000.txt                         x y z dx dy dz heading category  (LiDAR frame)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

P2 = np.array(
    [
        [721.5377, 0.0, 609.5593, 44.85728],
        [0.0, 721.5377, 172.854, 0.2163791],
        [0.0, 0.0, 1.0, 0.002745884],
    ]
)
R0_RECT = np.array(
    [
        [0.9999239, 0.00983776, -0.007445048],
        [-0.009869795, 0.9999421, -0.004278459],
        [0.007402527, 0.004351614, 0.9999631],
    ]
)
TR_VELO_TO_CAM = np.array(
    [
        [0.007533745, -0.9999714, -0.000616602, -0.004069766],
        [0.01480249, 0.0007280733, -0.9998902, -0.07631618],
        [0.9998621, 0.00752379, 0.01480755, -0.2717806],
    ]
)
IMAGE_SIZE = (1242, 375)  # width, height
SIZES = {
    "Car": (3.9, 1.6, 1.56),
    "Van": (5.0, 1.9, 2.2),
    "Pedestrian": (0.8, 0.6, 1.75),
    "Person_sitting": (0.8, 0.6, 1.2),
    "Cyclist": (1.76, 0.6, 1.73),
}  # dx dy dz, fmt: skip


def _fmt(values) -> str:
    return " ".join(f"{v:.6e}" for v in np.asarray(values).ravel())


def kitti_calib_text() -> str:
    p0 = P2.copy()
    p0[:, 3] = 0.0
    return (
        f"P0: {_fmt(p0)}\nP1: {_fmt(p0)}\nP2: {_fmt(P2)}\nP3: {_fmt(P2)}\n"
        f"R0_rect: {_fmt(R0_RECT)}\nTr_velo_to_cam: {_fmt(TR_VELO_TO_CAM)}\n"
        f"Tr_imu_to_velo: {_fmt(np.eye(3, 4))}\n"
    )


def _velo_to_rect(pts: np.ndarray) -> np.ndarray:
    return (np.c_[pts, np.ones(len(pts))] @ TR_VELO_TO_CAM.T) @ R0_RECT.T


def _corners(box: np.ndarray) -> np.ndarray:
    x, y, z, dx, dy, dz, yaw = box
    sx = np.array([1, 1, -1, -1, 1, 1, -1, -1]) * dx / 2
    sy = np.array([1, -1, -1, 1, 1, -1, -1, 1]) * dy / 2
    sz = np.array([-1, -1, -1, -1, 1, 1, 1, 1]) * dz / 2
    c, s = np.cos(yaw), np.sin(yaw)
    return np.c_[x + c * sx - s * sy, y + s * sx + c * sy, z + sz]


def _box_points(box: np.ndarray, n: int, rng) -> np.ndarray:
    local = rng.uniform(-0.5, 0.5, (n, 3)) * box[3:6]
    c, s = np.cos(box[6]), np.sin(box[6])
    xy = np.c_[c * local[:, 0] - s * local[:, 1], s * local[:, 0] + c * local[:, 1]]
    return np.c_[xy + box[:2], local[:, 2] + box[2]]


def _scene(rng, n_objects: int):
    """Objects in front of the car as LiDAR boxes, plus a point cloud of ground and objects."""
    names = ["Car", "Car", "Pedestrian", "Cyclist", "Van", "Person_sitting"][:n_objects]
    boxes = []
    for k, name in enumerate(names):
        dx, dy, dz = SIZES[name]
        x = 8.0 + 6.0 * k + rng.uniform(-0.5, 0.5)
        y = (-1) ** k * rng.uniform(0.5, 4.0)
        boxes.append([x, y, -1.73 + dz / 2, dx, dy, dz, rng.uniform(-np.pi, np.pi)])
    boxes = np.array(boxes).reshape(-1, 7)
    ground = np.c_[
        rng.uniform(0, 50, (1500, 1)),
        rng.uniform(-20, 20, (1500, 1)),
        np.full((1500, 1), -1.73) + rng.normal(0, 0.02, (1500, 1)),
    ]
    parts = [ground] + [_box_points(b, 150, rng) for b in boxes]
    xyz = np.concatenate(parts)
    points = np.c_[xyz, rng.uniform(0, 1, len(xyz))].astype(np.float32)
    return names, boxes, points


def _label_line(name: str, box: np.ndarray, rng) -> str:
    corners = _velo_to_rect(_corners(box))
    uv = np.c_[corners, np.ones(8)] @ P2.T
    uv = uv[:, :2] / uv[:, 2:3]
    w, h = IMAGE_SIZE
    x1, y1 = np.clip(uv.min(0), 0, [w - 1, h - 1])
    x2, y2 = np.clip(uv.max(0), 0, [w - 1, h - 1])
    bottom = box[:3] - [0, 0, box[5] / 2]
    x, y, z = _velo_to_rect(bottom[None])[0]
    ry = -box[6] - np.pi / 2
    ry = (ry + np.pi) % (2 * np.pi) - np.pi
    alpha = ry - np.arctan2(x, z)
    occluded = int(rng.integers(0, 2))
    return (
        f"{name} 0.00 {occluded} {alpha:.2f} {x1:.2f} {y1:.2f} {x2:.2f} {y2:.2f} "
        f"{box[5]:.2f} {box[4]:.2f} {box[3]:.2f} {x:.2f} {y:.2f} {z:.2f} {ry:.2f}"
    )


def write_kitti(
    root: str | Path, train: int = 3, val: int = 2, test: int = 2, seed: int = 0, n_objects: int = 6
) -> Path:
    """Write ``train + val`` labelled frames under ``training/`` and ``test`` under
    ``testing/`` in the released KITTI 3-D object layout; returns ``root``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    ids = {"train": [], "val": [], "test": []}
    for split, count in (("train", train), ("val", val)):
        for _ in range(count):
            ids[split].append(f"{len(ids['train']) + len(ids['val']):06d}")
    ids["test"] = [f"{i:06d}" for i in range(test)]
    for split, frame_ids in ids.items():
        part = root / ("testing" if split == "test" else "training")
        for frame in frame_ids:
            names, boxes, points = _scene(rng, n_objects)
            for folder in ("velodyne", "calib", "image_2") + (
                () if split == "test" else ("label_2",)
            ):
                (part / folder).mkdir(parents=True, exist_ok=True)
            points.tofile(part / "velodyne" / f"{frame}.bin")
            (part / "calib" / f"{frame}.txt").write_text(kitti_calib_text())
            Image.new("RGB", IMAGE_SIZE, (90, 90, 90)).save(part / "image_2" / f"{frame}.png")
            if split != "test":
                lines = [_label_line(n, b, rng) for n, b in zip(names, boxes, strict=True)]
                lines.append(
                    "DontCare -1 -1 -10 503.89 169.71 590.61 190.13 -1 -1 -1 -1000 -1000 -1000 -10"
                )
                (part / "label_2" / f"{frame}.txt").write_text("\n".join(lines) + "\n")
    (root / "ImageSets").mkdir(parents=True, exist_ok=True)
    for split, frame_ids in ids.items():
        (root / "ImageSets" / f"{split}.txt").write_text("".join(f"{i}\n" for i in frame_ids))
    return root


def write_custom(
    root: str | Path,
    train: int = 3,
    val: int = 2,
    seed: int = 0,
    classes: tuple[str, ...] = ("Vehicle", "Pedestrian", "Cyclist"),
) -> Path:
    """Write the OpenPCDet custom layout (LiDAR-frame labels, own class names)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    kitti_names = {"Car": classes[0], "Pedestrian": classes[1], "Cyclist": classes[2]}
    (root / "points").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets").mkdir(parents=True, exist_ok=True)
    splits = {"train": [], "val": []}
    index = 0
    for split, count in (("train", train), ("val", val)):
        for _ in range(count):
            frame = f"{index:06d}"
            index += 1
            names, boxes, points = _scene(rng, 4)
            np.save(root / "points" / f"{frame}.npy", points)
            lines = [
                " ".join(f"{v:.3f}" for v in b) + f" {kitti_names[n]}"
                for n, b in zip(names, boxes, strict=True)
                if n in kitti_names
            ]
            (root / "labels" / f"{frame}.txt").write_text("\n".join(lines) + "\n")
            splits[split].append(frame)
    for split, frame_ids in splits.items():
        (root / "ImageSets" / f"{split}.txt").write_text("".join(f"{i}\n" for i in frame_ids))
    return root


EVAL_TYPES = [
    "Car",
    "Car",
    "Car",
    "Van",
    "Pedestrian",
    "Pedestrian",
    "Person_sitting",
    "Cyclist",
    "Cyclist",
    "Truck",
    "DontCare",
]
EVAL_DIMS = {
    "Car": (1.5, 1.6, 3.9),
    "Van": (2.2, 1.9, 5.0),
    "Truck": (3.0, 2.5, 9.0),
    "Pedestrian": (1.75, 0.6, 0.8),
    "Person_sitting": (1.2, 0.6, 0.8),
    "Cyclist": (1.7, 0.6, 1.8),
    "DontCare": (1, 1, 1),
}


def _result_line(name, trunc, occ, alpha, bbox, dims, loc, ry, score=None):
    f = [
        name,
        f"{trunc:.2f}",
        str(occ),
        f"{alpha:.2f}",
        *(f"{v:.2f}" for v in bbox),
        *(f"{v:.2f}" for v in dims),
        *(f"{v:.2f}" for v in loc),
        f"{ry:.2f}",
    ]
    if score is not None:
        f.append(f"{score:.4f}")
    return " ".join(f)


def write_kitti_eval_sets(out, seed: int, frames: int = 40, spread: float = 0.25) -> Path:
    """Random KITTI ground truth ``out/gt/<id>.txt`` (label_2 lines incl. DontCare, Van,
    Person_sitting, Truck, random truncation/occlusion/2-D heights) and detections
    ``out/dt/<id>.txt`` (result lines with score: noisy copies with centre noise ``spread``
    metres, wrong classes, detections in DontCare regions, too-small 2-D boxes, false
    positives), for checking AP against the official evaluator."""
    rng = np.random.default_rng(seed)
    out = Path(out)
    (out / "gt").mkdir(parents=True, exist_ok=True)
    (out / "dt").mkdir(parents=True, exist_ok=True)
    for f in range(frames):
        gl, dl = [], []
        for _ in range(rng.integers(0, 12)):
            name = EVAL_TYPES[rng.integers(len(EVAL_TYPES))]
            dims = np.array(EVAL_DIMS[name]) * rng.uniform(0.85, 1.15, 3)
            loc = np.array([rng.uniform(-15, 15), 1.6 + rng.normal(0, 0.1), rng.uniform(5, 60)])
            ry = rng.uniform(-np.pi, np.pi)
            h = rng.uniform(10, 110)
            x1, y1 = rng.uniform(0, 1100), rng.uniform(100, 250)
            bbox = [x1, y1, x1 + h * rng.uniform(0.5, 2), y1 + h]
            trunc = float(rng.choice([0, 0, 0, 0.1, 0.2, 0.4, 0.6]))
            occ = int(rng.choice([0, 0, 1, 1, 2, 3]))
            if name == "DontCare":
                gl.append(
                    _result_line(name, -1, -1, -10, bbox, (-1, -1, -1), (-1000, -1000, -1000), -10)
                )
                if rng.random() < 0.5:  # a detection inside the DontCare region
                    d = EVAL_DIMS["Car"]
                    dl.append(
                        _result_line(
                            "Car",
                            -1,
                            -1,
                            0.1,
                            [bbox[0] + 2, bbox[1] + 2, bbox[2] - 2, bbox[3] - 2],
                            d,
                            (rng.uniform(-15, 15), 1.6, rng.uniform(5, 60)),
                            0.0,
                            rng.random(),
                        )
                    )
                continue
            gl.append(_result_line(name, trunc, occ, rng.uniform(-3, 3), bbox, dims, loc, ry))
            for _ in range(rng.choice([0, 1, 1, 1, 2])):
                dname = (
                    name if rng.random() < 0.85 else EVAL_TYPES[rng.integers(len(EVAL_TYPES) - 1)]
                )
                noise = rng.normal(0, [spread, 0.05, spread])
                noise[0] += 0.01  # never an exact copy (official IoU is degenerate there)
                dd = dims * rng.uniform(0.9, 1.1, 3)
                dbox = np.array(bbox) + rng.normal(0, 3, 4)
                if rng.random() < 0.15:
                    dbox[3] = dbox[1] + rng.uniform(15, 45)
                dl.append(
                    _result_line(
                        dname,
                        -1,
                        -1,
                        rng.uniform(-3, 3),
                        dbox,
                        dd,
                        loc + noise,
                        ry + rng.normal(0, 0.1),
                        rng.random(),
                    )
                )
        for _ in range(rng.integers(0, 4)):  # false positives
            name = EVAL_TYPES[rng.integers(len(EVAL_TYPES) - 1)]
            x1, y1 = rng.uniform(0, 1100), rng.uniform(100, 250)
            h = rng.uniform(10, 110)
            dl.append(
                _result_line(
                    name,
                    -1,
                    -1,
                    0.0,
                    [x1, y1, x1 + h, y1 + h],
                    EVAL_DIMS[name],
                    (rng.uniform(-15, 15), 1.6, rng.uniform(5, 60)),
                    rng.uniform(-3, 3),
                    rng.random(),
                )
            )
        (out / "gt" / f"{f:06d}.txt").write_text("".join(line + "\n" for line in gl))
        (out / "dt" / f"{f:06d}.txt").write_text("".join(line + "\n" for line in dl))
    return out
