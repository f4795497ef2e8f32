"""Synthetic LiDAR world in the KITTI layout: ray-cast scans of cars, pedestrians and cyclists.

``python -m tessera.datamodules.detection3d.synth --out DIR --seed S --train N --val N --test N``
(also ``tessera detection3d synth``) writes ``training/{velodyne,label_2,calib,image_2}`` and
``ImageSets/{train,val,test}.txt``. Unlike the released KITTI (whose test labels are withheld)
every split is labelled and lives under ``training/``.

A spinning LiDAR (``--beams`` rows between -24.9 and +2 degrees elevation, 0.3 degree azimuth
steps, 1.73 m above the ground, 70 m range) casts rays at a ground plane and at the objects
(oriented boxes; pedestrians and cyclists as two stacked boxes: legs/wheels and torso/rider).
Returns get 2 cm range noise, 8 % dropout and an intensity from a per-object reflectance,
incidence and range. Objects hide each other, so occlusion is real; the KITTI occlusion level
comes from the fraction of an object's rays it receives. A virtual camera with KITTI's
intrinsics gives calib files and the projected 2-D boxes / truncation.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from tessera.datamodules.common import atomic_write_text
from tessera.datamodules.detection3d.calibration import (
    Calibration,
    image_boxes,
    lidar_boxes_to_camera,
)
from tessera.datamodules.detection3d.labels import KittiLabels

SENSOR_HEIGHT = 1.73
IMAGE_SHAPE = (375, 1242)  # height, width
# class: (mean dx, dy, dz), spread
SIZES = {
    "Car": ((3.9, 1.6, 1.56), 0.08),
    "Van": ((5.0, 1.9, 2.1), 0.06),
    "Pedestrian": ((0.8, 0.6, 1.75), 0.08),
    "Cyclist": ((1.76, 0.6, 1.73), 0.06),
}
REFLECTANCE = {
    "Car": (0.3, 0.9),
    "Van": (0.3, 0.9),
    "Pedestrian": (0.1, 0.5),
    "Cyclist": (0.2, 0.6),
}


def virtual_calibration() -> Calibration:
    """KITTI's P2 intrinsics; a camera 0.27 m behind and 0.08 m below the LiDAR."""
    p2 = np.array(
        [[721.54, 0.0, 609.56, 44.86], [0.0, 721.54, 172.85, 0.22], [0.0, 0.0, 1.0, 0.0027]]
    )
    v2c = np.array([[0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, -0.08], [1.0, 0.0, 0.0, -0.27]])
    return Calibration(p2, np.eye(3), v2c)


def _parts(name: str, box: np.ndarray) -> list[np.ndarray]:
    """Boxes a ray can hit: one for vehicles, two stacked (thin lower, wide upper) otherwise."""
    if name in ("Car", "Van"):
        return [box]
    lower, upper = box.copy(), box.copy()
    z0 = box[2] - box[5] / 2
    lower[5] = box[5] * 0.45
    lower[2] = z0 + lower[5] / 2
    lower[4] = box[4] * 0.5
    upper[5] = box[5] * 0.55
    upper[2] = z0 + box[5] * 0.45 + upper[5] / 2
    if name == "Cyclist":
        upper[3] = box[3] * 0.45
    return [lower, upper]


def ray_box_hits(dirs: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Distance along unit rays from the origin to an oriented box (inf if missed)."""
    c, s = np.cos(-box[6]), np.sin(-box[6])
    o = -box[:3]
    o = np.array([c * o[0] - s * o[1], s * o[0] + c * o[1], o[2]])
    d = np.stack([c * dirs[:, 0] - s * dirs[:, 1], s * dirs[:, 0] + c * dirs[:, 1], dirs[:, 2]], 1)
    half = box[3:6] / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (-half - o) / d
        t2 = (half - o) / d
    near = np.nanmax(np.minimum(t1, t2), 1)
    far = np.nanmin(np.maximum(t1, t2), 1)
    return np.where((far >= near) & (near > 0), near, np.inf)


def _place_objects(rng: np.random.Generator):
    counts = {
        "Car": rng.integers(4, 11),
        "Van": rng.integers(0, 2),
        "Pedestrian": rng.integers(2, 7),
        "Cyclist": rng.integers(1, 5),
    }
    names, boxes = [], []
    for name, n in counts.items():
        (dx, dy, dz), spread = SIZES[name]
        for _ in range(int(n)):
            for _attempt in range(30):
                x = rng.uniform(4, 40)
                y = rng.uniform(-1, 1) * min(19.5, 0.9 * x)  # inside the camera's field of view
                size = np.array([dx, dy, dz]) * rng.uniform(1 - spread, 1 + spread, 3)
                radius = 0.5 * np.hypot(size[0], size[1])
                if all(
                    np.hypot(x - b[0], y - b[1]) > radius + 0.5 * np.hypot(b[3], b[4]) + 0.3
                    for b in boxes
                ):
                    break
            else:
                continue
            heading = rng.uniform(-np.pi, np.pi)
            boxes.append([x, y, -SENSOR_HEIGHT + size[2] / 2, *size, heading])
            names.append(name)
    return names, np.array(boxes, dtype=np.float64).reshape(-1, 7)


def scan(names: list[str], boxes: np.ndarray, rng: np.random.Generator, beams: int = 32):
    """Ray-cast one sweep -> points (N, 4) and per-object (hits, unoccluded hits)."""
    elev = np.deg2rad(np.linspace(-24.9, 2.0, beams))
    azim = np.deg2rad(np.arange(-180, 180, 0.3))
    el, az = np.meshgrid(elev, azim, indexing="ij")
    dirs = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], -1).reshape(
        -1, 3
    )
    with np.errstate(divide="ignore"):
        t_ground = np.where(dirs[:, 2] < 0, -SENSOR_HEIGHT / dirs[:, 2], np.inf)
    hits = [t_ground]
    for name, box in zip(names, boxes, strict=True):
        hits.append(np.minimum.reduce([ray_box_hits(dirs, p) for p in _parts(name, box)]))
    hits = np.stack(hits)  # (1 + objects, rays)
    nearest = hits.argmin(0)
    dist = hits[nearest, np.arange(len(dirs))]
    alone = np.isfinite(hits[1:]).sum(1)
    seen = np.array([(nearest == k + 1).sum() for k in range(len(names))])
    keep = (dist < 70.0) & (rng.random(len(dirs)) > 0.08)
    dist, dirs_k, owner = dist[keep], dirs[keep], nearest[keep]
    dist = dist + rng.normal(0, 0.02, len(dist))
    xyz = dirs_k * dist[:, None]
    refl = np.concatenate(
        [[rng.uniform(0.05, 0.25)], [rng.uniform(*REFLECTANCE[n]) for n in names]]
    )
    incidence = np.abs(dirs_k[:, 2]) * (owner == 0) + 0.7 * (owner > 0)
    intensity = np.clip(
        refl[owner] * (0.5 + 0.5 * incidence) * np.exp(-dist / 120)
        + rng.normal(0, 0.02, len(dist)),
        0,
        1,
    )
    points = np.concatenate([xyz, intensity[:, None]], 1).astype(np.float32)
    return points, alone, seen


def frame_labels(names, boxes, alone, seen, calib: Calibration) -> KittiLabels:
    """KITTI labels of the objects in front of the camera: projected 2-D box, truncation (share
    of the unclipped box outside the image), occlusion level (0 >= 80 % of its rays seen, 1 >=
    40 %, 2 >= 10 %, else 3)."""
    in_front = boxes[:, 0] > 1.0
    names = [n for n, k in zip(names, in_front, strict=True) if k]
    boxes, alone, seen = boxes[in_front], alone[in_front], seen[in_front]
    raw = image_boxes(boxes, calib, None)
    clipped = image_boxes(boxes, calib, IMAGE_SHAPE)
    area = lambda b: np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)  # noqa: E731
    with np.errstate(invalid="ignore", divide="ignore"):
        truncated = np.clip(1 - area(clipped) / np.maximum(area(raw), 1e-6), 0, 1)
        visible = np.where(alone > 0, seen / np.maximum(alone, 1), 0.0)
    inside = area(clipped) > 0
    occluded = np.select([visible >= 0.8, visible >= 0.4, visible >= 0.1], [0, 1, 2], 3)
    loc, dims, ry = lidar_boxes_to_camera(boxes, calib)
    alpha = ry - np.arctan2(loc[:, 0], loc[:, 2])
    labels = KittiLabels(
        names,
        np.round(truncated, 2),
        occluded,
        alpha,
        clipped,
        dims,
        loc,
        ry,
        np.full(len(names), np.nan),
    )
    return labels.select(inside & (truncated < 0.9))


def write_world(
    out: str | Path,
    seed: int = 0,
    train: int = 200,
    val: int = 50,
    test: int = 50,
    beams: int = 32,
    progress: bool = True,
) -> Path:
    out = Path(out)
    rng = np.random.default_rng(seed)
    calib = virtual_calibration()
    part = out / "training"
    for folder in ("velodyne", "label_2", "calib", "image_2"):
        (part / folder).mkdir(parents=True, exist_ok=True)
    (out / "ImageSets").mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", IMAGE_SHAPE[::-1], (110, 110, 110))
    index = 0
    splits = {"train": train, "val": val, "test": test}
    bar = tqdm(total=sum(splits.values()), desc="synth detection3d", disable=not progress)
    for split, count in splits.items():
        ids = []
        for _ in range(count):
            frame = f"{index:06d}"
            index += 1
            names, boxes = _place_objects(rng)
            points, alone, seen = scan(names, boxes, rng, beams)
            labels = frame_labels(names, boxes, alone, seen, calib)
            with open(part / "velodyne" / f".{frame}.tmp", "wb") as f:
                points.tofile(f)
            (part / "velodyne" / f".{frame}.tmp").replace(part / "velodyne" / f"{frame}.bin")
            atomic_write_text(part / "label_2" / f"{frame}.txt", labels.to_text())
            atomic_write_text(part / "calib" / f"{frame}.txt", calib.to_text())
            image.save(part / "image_2" / f"{frame}.png")
            ids.append(frame)
            bar.update()
        if count:
            atomic_write_text(out / "ImageSets" / f"{split}.txt", "".join(f"{i}\n" for i in ids))
    bar.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tessera detection3d synth", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train", type=int, default=200)
    parser.add_argument("--val", type=int, default=50)
    parser.add_argument("--test", type=int, default=50)
    parser.add_argument("--beams", type=int, default=32, choices=range(16, 129), metavar="16..128")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    write_world(args.out, args.seed, args.train, args.val, args.test, args.beams)
    print(f"wrote {args.train + args.val + args.test} frames to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
