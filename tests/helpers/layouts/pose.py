"""Fixture generators of the pose layouts, from the datasets' own documentation.

- :func:`write_coco`: COCO 2017 person keypoints as released (cocodataset.org/#format-data,
  "Keypoint Detection"): ``annotations/person_keypoints_{train,val}2017.json`` with
  ``info/licenses/images/annotations/categories``; annotations carry ``segmentation``,
  ``num_keypoints``, ``area``, ``iscrowd``, ``keypoints`` (17 x, y, v with v ∈ {0, 1, 2}),
  ``image_id``, ``bbox`` (x, y, w, h), ``category_id``, ``id``; ``categories[0]`` holds the
  17 keypoint names and the 1-based ``skeleton``. Images ``{split}2017/<12-digit id>.jpg``.
  Person detections in the COCO results format as mmpose ships them
  (``person_detection_results/COCO_val2017_detections_AP_H_56_person.json``:
  ``[{image_id, category_id, bbox, score}]``).
- :func:`write_h36m`: Human3.6M as VideoPose3D's ``data/prepare_data_h36m.py`` writes it
  (``DATASETS.md``): ``data_3d_h36m.npz`` with ``positions_3d`` = pickled dict
  ``{subject: {action: float32 (T, 32, 3) metres}}``; ``data_2d_h36m_gt.npz`` and
  ``data_2d_h36m_cpn_ft_h36m_dbb.npz`` with ``positions_2d`` = ``{subject: {action: [4 ×
  (T, 17, 2)]}}`` pixels and ``metadata = {layout_name: 'h36m', num_joints: 17,
  keypoints_symmetry: [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]}``, saved with
  ``np.savez_compressed`` (0-d object arrays); plus ``cameras.json`` with the calibration in
  VideoPose3D's ``h36m_dataset.py`` structure (our reader's input, see docs/apps/pose.md), or,
  with ``cameras_json=False``, only the npz files as VideoPose3D leaves them (the reader then
  recovers the cameras from the ground-truth 2-D).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from tessera.datamodules.pose.skeleton import COCO_KEYPOINTS, COCO_SKELETON, H36M_32_TO_17

H36M_CAMERA_IDS = ("54138969", "55011271", "58860488", "60457274")
# A standing H36M-17 pose (metres, z up), used to fill the fixtures' sequences.
_REST_17 = np.array(
    [
        [0, 0, 0.95],
        [-0.13, 0, 0.95],
        [-0.13, 0.02, 0.5],
        [-0.13, 0.05, 0.07],
        [0.13, 0, 0.95],
        [0.13, 0.02, 0.5],
        [0.13, 0.05, 0.07],
        [0, 0, 1.2],
        [0, 0, 1.45],
        [0, -0.05, 1.55],
        [0, 0, 1.7],
        [0.18, 0, 1.42],
        [0.2, 0, 1.15],
        [0.22, -0.05, 0.9],
        [-0.18, 0, 1.42],
        [-0.2, 0, 1.15],
        [-0.22, -0.05, 0.9],
    ]
)


def _person(rng, x0, y0, scale):
    """17 COCO keypoints of an upright stick person at (x0, y0) (pixels)."""
    base = np.array(
        [
            [0, -3.2],
            [-0.2, -3.35],
            [0.2, -3.35],
            [-0.4, -3.25],
            [0.4, -3.25],
            [-0.8, -2.5],
            [0.8, -2.5],
            [-1.0, -1.6],
            [1.0, -1.6],
            [-1.1, -0.8],
            [1.1, -0.8],
            [-0.5, -0.6],
            [0.5, -0.6],
            [-0.55, 0.5],
            [0.55, 0.5],
            [-0.6, 1.5],
            [0.6, 1.5],
        ]
    )
    return base * scale + np.array([x0, y0]) + rng.normal(0, 0.05 * scale, base.shape)


def write_coco(root, splits=("train", "val"), images_per_split=3, seed=0) -> Path:
    """A few COCO-format images with 1-2 persons each, in the released layout.

    Includes the cases a real file has: a crowd annotation (``iscrowd=1``, RLE segmentation,
    no keypoints), a person with ``num_keypoints=0``, a box reaching past the image border,
    occluded (v=1) and unlabelled (v=0) joints, grayscale and odd-sized images.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    ann_dir = root / "annotations"
    ann_dir.mkdir(parents=True, exist_ok=True)
    category = {
        "supercategory": "person",
        "id": 1,
        "name": "person",
        "keypoints": list(COCO_KEYPOINTS),
        "skeleton": [list(e) for e in COCO_SKELETON],
    }
    ann_id = 1
    for s, split in enumerate(splits):
        (root / f"{split}2017").mkdir(exist_ok=True)
        images, anns, dets = [], [], []
        for i in range(images_per_split):
            image_id = 1000 * (s + 1) + i * 7 + 1
            w, h = (97, 75) if i % 2 else (80, 64)
            canvas = Image.new("RGB", (w, h), tuple(int(v) for v in rng.integers(0, 255, 3)))
            draw = ImageDraw.Draw(canvas)
            n_persons = 2 if i % 2 == 0 else 1
            for p in range(n_persons):
                sc = h / 12.0
                x0 = w * (0.3 + 0.4 * p) + (0.45 * w if (i == 1 and p == 0) else 0)
                kp = _person(rng, x0, h * 0.6, sc)
                for a, b in COCO_SKELETON:
                    draw.line([tuple(kp[a - 1]), tuple(kp[b - 1])], fill=(255, 255, 255), width=2)
                v = np.full(17, 2)
                v[rng.integers(0, 17)] = 1
                if p == 1:
                    v[3:5] = 0
                outside = (kp[:, 0] < 0) | (kp[:, 0] >= w) | (kp[:, 1] < 0) | (kp[:, 1] >= h)
                v[outside] = 0
                xy = np.where(v[:, None] > 0, kp, 0)
                lo, hi = kp.min(0) - sc * 0.3, kp.max(0) + sc * 0.3
                bbox = [float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1])]
                keypoints = np.concatenate([xy, v[:, None]], 1).round(2).ravel().tolist()
                keypoints = [int(k) if j % 3 == 2 else k for j, k in enumerate(keypoints)]
                anns.append(
                    {
                        "segmentation": [
                            [
                                bbox[0],
                                bbox[1],
                                bbox[0] + bbox[2],
                                bbox[1],
                                bbox[0] + bbox[2],
                                bbox[1] + bbox[3],
                            ]
                        ],
                        "num_keypoints": int((v > 0).sum()),
                        "area": float(bbox[2] * bbox[3] * 0.6),
                        "iscrowd": 0,
                        "keypoints": keypoints,
                        "image_id": image_id,
                        "bbox": bbox,
                        "category_id": 1,
                        "id": ann_id,
                    }
                )
                dets.append(
                    {
                        "image_id": image_id,
                        "category_id": 1,
                        "score": 0.9 - 0.1 * p,
                        "bbox": [b + rng.normal(0, 0.5) for b in bbox],
                    }
                )
                ann_id += 1
            if i == 0:  # an unlabelled person and a crowd region, as in the real files
                anns.append(
                    {
                        "segmentation": [[1, 1, 10, 1, 10, 10]],
                        "num_keypoints": 0,
                        "area": 40.0,
                        "iscrowd": 0,
                        "keypoints": [0] * 51,
                        "image_id": image_id,
                        "bbox": [1.0, 1.0, 9.0, 9.0],
                        "category_id": 1,
                        "id": ann_id,
                    }
                )
                anns.append(
                    {
                        "segmentation": {"counts": [0, 20, 40], "size": [h, w]},
                        "num_keypoints": 0,
                        "area": 20.0,
                        "iscrowd": 1,
                        "keypoints": [0] * 51,
                        "image_id": image_id,
                        "bbox": [2.0, 40.0, 5.0, 4.0],
                        "category_id": 1,
                        "id": ann_id + 1,
                    }
                )
                dets.append(
                    {
                        "image_id": image_id,
                        "category_id": 1,
                        "score": 0.05,
                        "bbox": [0.0, 0.0, 8.0, 8.0],
                    }
                )
                ann_id += 2
            name = f"{image_id:012d}.jpg"
            img = canvas.convert("L") if i == 2 else canvas
            img.save(root / f"{split}2017" / name, quality=90)
            images.append(
                {
                    "license": 1,
                    "file_name": name,
                    "coco_url": f"http://images.cocodataset.org/{split}2017/{name}",
                    "height": h,
                    "width": w,
                    "date_captured": "2013-11-14",
                    "flickr_url": "",
                    "id": image_id,
                }
            )
        data = {
            "info": {"description": "COCO 2017 Dataset", "version": "1.0", "year": 2017},
            "licenses": [
                {
                    "url": "http://creativecommons.org/licenses/by-nc-sa/2.0/",
                    "id": 1,
                    "name": "Attribution-NonCommercial-ShareAlike License",
                }
            ],
            "images": images,
            "annotations": anns,
            "categories": [category],
        }
        (ann_dir / f"person_keypoints_{split}2017.json").write_text(json.dumps(data))
        if split == "val":
            det_dir = root / "person_detection_results"
            det_dir.mkdir(exist_ok=True)
            (det_dir / "COCO_val2017_detections_AP_H_56_person.json").write_text(json.dumps(dets))
    return root


def _quat_look(yaw: float) -> np.ndarray:
    """Camera→world quaternion of a camera at yaw ``yaw`` looking at the origin (z up)."""
    forward = -np.array([np.cos(yaw), np.sin(yaw), 0.0])
    down = np.array([0.0, 0.0, -1.0])
    right = np.cross(down, forward)
    rot = np.stack([right, down, forward], axis=1)  # columns: camera x, y, z in world
    w = np.sqrt(max(1e-12, 1 + np.trace(rot))) / 2
    return np.array(
        [
            w,
            (rot[2, 1] - rot[1, 2]) / (4 * w),
            (rot[0, 2] - rot[2, 0]) / (4 * w),
            (rot[1, 0] - rot[0, 1]) / (4 * w),
        ]
    )


def h36m_cameras(subjects, rng) -> dict:
    """A cameras.json dict: 4 cameras around the capture area, per subject."""
    intrinsics = {
        cid: {
            "res_w": 1000,
            "res_h": 1002 if k % 2 else 1000,
            "center": [500 + rng.normal(0, 5), 500 + rng.normal(0, 5)],
            "focal_length": [1145 + rng.normal(0, 3)] * 2,
            "radial_distortion": [-0.2, 0.2, -0.005],
            "tangential_distortion": [-0.001, 0.001],
            "azimuth": 70 * (k + 1),
        }
        for k, cid in enumerate(H36M_CAMERA_IDS)
    }
    extrinsics = {}
    for subject in subjects:
        views = []
        for k, cid in enumerate(H36M_CAMERA_IDS):
            yaw = np.pi / 4 + k * np.pi / 2 + rng.normal(0, 0.05)
            position = 5.0 * np.array([np.cos(yaw), np.sin(yaw), 0]) + [0, 0, 1.5]
            views.append(
                {
                    "id": cid,
                    "orientation": _quat_look(yaw).tolist(),
                    "translation": (position * 1000).tolist(),
                }
            )
        extrinsics[subject] = views
    return {"intrinsics": intrinsics, "extrinsics": extrinsics}


def write_h36m(
    root,
    subjects=("S1", "S5", "S9", "S11"),
    actions=("Directions 1", "Walking"),
    frames=24,
    seed=0,
    cameras_json=True,
) -> Path:
    """VideoPose3D's prepared Human3.6M files for a few subjects/actions (see module doc)."""
    from tessera.datamodules.pose.h36m import (
        Camera,
        project,
        read_cameras,
        world_to_camera,
    )

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    (root / "cameras.json").write_text(json.dumps(h36m_cameras(subjects, rng)))
    cameras: dict[str, list[Camera]] = read_cameras(root / "cameras.json")
    positions_3d, gt_2d, cpn_2d = {}, {}, {}
    for subject in subjects:
        positions_3d[subject], gt_2d[subject], cpn_2d[subject] = {}, {}, {}
        for action in actions:
            t = np.arange(frames)[:, None, None]
            pose17 = _REST_17[None] + 0.03 * np.sin(0.3 * t + rng.uniform(0, 6, (1, 17, 3)))
            pose17 = pose17 + np.concatenate([0.02 * t, 0.01 * t, 0 * t], axis=-1)
            pose32 = np.repeat(pose17[:, :1], 32, axis=1)
            pose32[:, list(H36M_32_TO_17)] = pose17
            positions_3d[subject][action] = pose32.astype(np.float32)
            views_gt, views_cpn = [], []
            for cam in cameras[subject]:
                kp = project(world_to_camera(pose17, cam), cam).astype(np.float32)
                views_gt.append(kp)
                # Detections cover a few more frames than the mocap (trimmed on load).
                extra = np.concatenate([kp, kp[-2:]], 0) + rng.normal(0, 2, (frames + 2, 17, 2))
                views_cpn.append(extra.astype(np.float32))
            gt_2d[subject][action], cpn_2d[subject][action] = views_gt, views_cpn
    symmetry = [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]
    np.savez_compressed(root / "data_3d_h36m.npz", positions_3d=positions_3d)
    for name, data in (("gt", gt_2d), ("cpn_ft_h36m_dbb", cpn_2d)):
        meta = {"layout_name": "h36m", "num_joints": 17, "keypoints_symmetry": symmetry}
        np.savez_compressed(root / f"data_2d_h36m_{name}.npz", positions_2d=data, metadata=meta)
    if not cameras_json:
        (root / "cameras.json").unlink()
    return root
