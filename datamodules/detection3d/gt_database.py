"""Ground-truth sampling database (SECOND, Yan et al., Sensors 2018; OpenPCDet
``datasets/augmentor/database_sampler.py`` and ``create_groundtruth_database``).

Built once from the training split: the points inside every labelled box of the classes,
stored relative to the box centre, plus an index. While training, objects drawn from it are
pasted into a frame up to a per-class count, skipping any whose bird's-eye-view footprint
overlaps an existing or already pasted box; the frame's own points inside a pasted box are
removed first.

``python -m tessera.datamodules.detection3d.gt_database --data ROOT`` writes
``ROOT/gt_database/<frame>_<class>_<k>.bin`` (float32 x, y, z, intensity, as KITTI
velodyne) and ``ROOT/gt_database/dbinfos_<split>.json`` (JSON, not OpenPCDet's pickle: it is
read without executing anything). The datamodule builds it on first use when
``gt_sampling`` is set.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tessera.datamodules.common import DataError, atomic_write_text
from tessera.datamodules.detection3d.layouts import (
    custom_refs,
    detect_layout,
    kitti_refs,
    load_frame,
)

FOLDER = "gt_database"


def points_in_boxes(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(N, M) bool: point n lies inside LiDAR box m (x, y, z-centre, dx, dy, dz, heading)."""
    if len(points) == 0 or len(boxes) == 0:
        return np.zeros((len(points), len(boxes)), dtype=bool)
    rel = points[:, None, :3] - boxes[None, :, :3]
    c, s = np.cos(boxes[:, 6]), np.sin(boxes[:, 6])
    local_x = rel[..., 0] * c + rel[..., 1] * s
    local_y = -rel[..., 0] * s + rel[..., 1] * c
    half = boxes[:, 3:6] / 2
    return (
        (np.abs(local_x) <= half[:, 0])
        & (np.abs(local_y) <= half[:, 1])
        & (np.abs(rel[..., 2]) <= half[:, 2])
    )


def _footprints(boxes: np.ndarray) -> np.ndarray:
    """(M, 4, 2) bird's-eye-view corners."""
    c, s = np.cos(boxes[:, 6]), np.sin(boxes[:, 6])
    hx, hy = boxes[:, 3] / 2, boxes[:, 4] / 2
    signs = np.array([[1, 1], [1, -1], [-1, -1], [-1, 1]], dtype=np.float64)
    lx, ly = signs[None, :, 0] * hx[:, None], signs[None, :, 1] * hy[:, None]
    return np.stack(
        [boxes[:, None, 0] + lx * c[:, None] - ly * s[:, None],
         boxes[:, None, 1] + lx * s[:, None] + ly * c[:, None]], -1
    )  # fmt: skip


def bev_overlaps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(M, K) bool: the footprints of boxes ``a`` and ``b`` overlap (separating-axis test on
    the two rectangles' four edge normals; touching counts as overlapping)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), dtype=bool)
    pa, pb = _footprints(a), _footprints(b)  # (M, 4, 2), (K, 4, 2)
    na, nb = pa[:, 1:3] - pa[:, :2], pb[:, 1:3] - pb[:, :2]  # two edge directions each
    axes = np.concatenate(
        [
            np.broadcast_to(na[:, None], (len(a), len(b), 2, 2)),
            np.broadcast_to(nb[None], (len(a), len(b), 2, 2)),
        ],
        2,
    )  # (M, K, 4, 2); an edge direction of a rectangle is the normal of its other edge pair
    proj_a = np.einsum("mcd,mkad->mkac", pa, axes)
    proj_b = np.einsum("kcd,mkad->mkac", pb, axes)
    separated = (proj_a.max(3) < proj_b.min(3)) | (proj_b.max(3) < proj_a.min(3))
    return ~separated.any(2)


def _refs(root: Path, layout: str, split: str):
    if layout == "kitti":
        return kitti_refs(root, split)
    if layout == "custom":
        return custom_refs(root, split)
    raise DataError(root, "a ground-truth database needs a labelled KITTI or custom layout")


def build_gt_database(
    root: str | Path,
    class_names: Sequence[str] = ("Car", "Pedestrian", "Cyclist"),
    split: str = "train",
    layout: str = "auto",
    fov_only: bool = True,
    progress: bool = True,
) -> Path:
    """Write the database of ``split`` and return its index file (``dbinfos_<split>.json``).

    Each index record: ``name``, ``path`` (relative to ``root``), ``frame``, ``gt_idx``,
    ``box`` (LiDAR, 7 values), ``num_points`` and ``difficulty`` (KITTI level, -1 if none or
    not KITTI). Points are read as training reads them (KITTI: camera field of view).
    """
    root = Path(root)
    layout = detect_layout(root) if layout == "auto" else layout
    out = root / FOLDER
    out.mkdir(parents=True, exist_ok=True)
    infos = []
    refs = _refs(root, layout, split)
    for ref in tqdm(refs, desc=f"gt database {split}", disable=not progress, file=sys.stderr):
        frame = load_frame(ref, layout, tuple(class_names), fov_only)
        levels = np.full(len(frame.gt_names), -1)
        if frame.labels is not None:
            kept = np.array([n in class_names for n in frame.labels.name], dtype=bool)
            levels = frame.labels.difficulty()[kept]
        inside = points_in_boxes(frame.points, frame.gt_boxes)
        for k, (name, box) in enumerate(zip(frame.gt_names, frame.gt_boxes, strict=True)):
            pts = frame.points[inside[:, k]].astype(np.float32)
            pts[:, :3] -= box[:3].astype(np.float32)
            rel = f"{FOLDER}/{ref.item_id}_{name}_{k}.bin"
            tmp = root / f"{rel}.tmp"
            pts.tofile(tmp)
            tmp.replace(root / rel)
            infos.append(
                {
                    "name": name,
                    "path": rel,
                    "frame": ref.item_id,
                    "gt_idx": k,
                    "box": [float(v) for v in box],
                    "num_points": len(pts),
                    "difficulty": int(levels[k]),
                }
            )
    index = out / f"dbinfos_{split}.json"
    atomic_write_text(index, json.dumps({"split": split, "classes": list(class_names),
                                         "infos": infos}))  # fmt: skip
    return index


class GTSampler:
    """Pastes database objects into training frames (OpenPCDet ``DataBaseSampler``).

    Args:
        root: dataset root holding ``gt_database/``.
        sample_groups: per class the number of objects a frame should reach
            (``{"Car": 15, "Pedestrian": 15, "Cyclist": 15}`` in OpenPCDet's KITTI configs);
            a frame that already has that many gets none.
        min_points: database objects with fewer points are never drawn (5 in OpenPCDet).
        split: the database's split.
    """

    def __init__(
        self,
        root: str | Path,
        sample_groups: Mapping[str, int],
        min_points: int = 5,
        split: str = "train",
    ):
        self.root = Path(root)
        index = self.root / FOLDER / f"dbinfos_{split}.json"
        if not index.is_file():
            raise DataError(
                index,
                "no ground-truth database",
                f"build it: python -m tessera.datamodules.detection3d.gt_database --data {root}",
            )
        infos = json.loads(index.read_text())["infos"]
        self.sample_groups = dict(sample_groups)
        self.pools = {
            name: [i for i in infos if i["name"] == name and i["num_points"] >= min_points]
            for name in self.sample_groups
        }
        empty = [n for n, pool in self.pools.items() if not pool]
        if empty:
            raise DataError(index, f"no database objects of {empty} with >= {min_points} points")

    def _read(self, info: dict) -> np.ndarray:
        path = self.root / info["path"]
        data = np.fromfile(path, dtype=np.float32)
        if data.size % 4:
            raise DataError(path, "size is not a multiple of 4 float32 values")
        pts = data.reshape(-1, 4).copy()
        pts[:, :3] += np.asarray(info["box"][:3], dtype=np.float32)
        return pts

    def __call__(
        self,
        points: np.ndarray,
        boxes: np.ndarray,
        names: list[str],
        rng: np.random.Generator,
    ) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Frame (points (N, 4), boxes (M, 7), names) -> the frame with pasted objects."""
        drawn: list[dict] = []
        for name, target in self.sample_groups.items():
            count = target - sum(n == name for n in names)
            pool = self.pools[name]
            if count > 0:
                picks = rng.choice(len(pool), size=min(count, len(pool)), replace=False)
                drawn += [pool[int(p)] for p in picks]
        if not drawn:
            return points, boxes, names
        cand = np.array([d["box"] for d in drawn], dtype=np.float64)
        ok = ~bev_overlaps(cand, boxes.astype(np.float64)).any(1)
        among = bev_overlaps(cand, cand)
        kept: list[int] = []
        for i in np.flatnonzero(ok):  # greedily, in draw order, like OpenPCDet
            if not among[i, kept].any():
                kept.append(int(i))
        if not kept:
            return points, boxes, names
        new_boxes = cand[kept]
        points = points[~points_in_boxes(points, new_boxes).any(1)]
        pasted = [self._read(drawn[i]) for i in kept]
        points = np.concatenate([points, *pasted]).astype(points.dtype, copy=False)
        boxes = np.concatenate([boxes, new_boxes.astype(boxes.dtype)])
        return points, boxes, names + [drawn[i]["name"] for i in kept]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tessera.datamodules.detection3d.gt_database",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("--data", required=True, help="KITTI or OpenPCDet custom dataset root")
    parser.add_argument("--split", default="train")
    parser.add_argument("--classes", nargs="+", default=["Car", "Pedestrian", "Cyclist"])
    parser.add_argument("--all-points", action="store_true", help="KITTI: not only the FOV")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    index = build_gt_database(args.data, args.classes, args.split, fov_only=not args.all_points)
    count = len(json.loads(index.read_text())["infos"])
    print(f"wrote {count} objects to {index.parent}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
