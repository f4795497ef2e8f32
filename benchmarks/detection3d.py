"""LiDAR 3-D detection: CPU latency per frame by stage, for each backbone, at ~20 k and ~100 k
points, and peak memory.

Stages (one frame, batch 1, eval mode): dynamic voxelisation + pillar net, the sparse voxel
backbone (DSVT / FlatFormer / ScatterFormer, tiny configs at dim 32), BEV scatter + BEV ResNet
+ CenterPoint head, and decoding + rotated NMS. Frames are ray-cast synthetic scans (44 beams
cropped to the tiny range for ~20 k points; a whole 128-beam sweep for ~100 k).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import yaml

from tessera.apps.detection3d.model import PillarDetector
from tessera.datamodules.detection3d.synth import _place_objects, scan

CONFIG = Path(__file__).resolve().parents[1] / "apps" / "detection3d" / "configs" / "tiny.yaml"
BACKBONES = ("dsvt_tiny", "flatformer_tiny", "scatterformer_tiny")


def _cloud(beams: int, pc_range, crop: bool) -> torch.Tensor:
    rng = np.random.default_rng(0)
    names, boxes = _place_objects(rng)
    points, _, _ = scan(names, boxes, rng, beams)
    if crop:
        r = np.asarray(pc_range)
        points = points[((points[:, :3] >= r[:3]) & (points[:, :3] < r[3:])).all(1)]
    return torch.from_numpy(points)


def _cases(model: PillarDetector, points: list[torch.Tensor]) -> tuple[dict, int]:
    """Timed callables of one model on one frame, and its pillar count."""
    with torch.no_grad():
        voxels = model.voxelizer(points)
        feats = model.pfn(voxels)
        grid = model.voxelizer.grid_shape
        canvas = model.bev_features(points)
        dense = model.head(model.bev(canvas))

    @torch.no_grad()
    def end_to_end():
        model.head.decode(model(points))

    @torch.no_grad()
    def voxelise():
        model.pfn(model.voxelizer(points))

    @torch.no_grad()
    def backbone():
        model.backbone(feats, voxels.coords, grid)

    @torch.no_grad()
    def bev_and_head():
        model.head(model.bev(canvas))

    cases = {
        "end-to-end": end_to_end,
        "voxelise + pillar net": voxelise,
        "backbone": backbone,
        "BEV ResNet + head": bev_and_head,
        "decode + rotated NMS": lambda: model.head.decode(dense),
    }
    return cases, int(voxels.coords.shape[0])


def run(bench) -> None:
    cfg = yaml.safe_load(CONFIG.read_text())["model"]
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    bench.note(f"torch threads: {torch.get_num_threads()}; load average at start {load}")
    # ~20 k: 44 beams cropped to the range; ~100 k: a whole 128-beam 360-degree sweep (the
    # voxeliser drops what lies outside the range, as with a raw sensor frame)
    sizes = {"~20k": (44, True), "~100k": (128, False)}
    if bench.quick:
        sizes.pop("~100k")
    for label, (beams, crop) in sizes.items():
        points = [_cloud(beams, cfg["point_cloud_range"], crop)]
        for name in BACKBONES:
            torch.manual_seed(0)
            model = PillarDetector(
                cfg["class_names"], cfg["point_cloud_range"], cfg["voxel_size"],
                {"type": name, "dim": 32}, cfg["bev"], cfg["head"],
            ).eval()  # fmt: skip
            cases, pillars = _cases(model, points)
            params = {"size": label, "points": len(points[0]), "pillars": pillars, "backbone": name}
            bench.compare(params, cases, baseline="end-to-end")
