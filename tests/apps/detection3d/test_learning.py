"""The tiny DSVT detector learns on a tiny synthetic world: the heatmap loss falls and car
BEV AP on the frames it saw rises from 0 above a floor (slow)."""

from pathlib import Path

import pytest
import torch
import yaml

from tessera.apps.detection3d.metrics import lidar_evaluate
from tessera.apps.detection3d.module import Detection3DModule
from tessera.datamodules.detection3d.datamodule import Detection3DDataModule
from tessera.datamodules.detection3d.synth import write_world

FRAMES, STEPS = 8, 160
# A 20 x 20 m crop (64 x 64 pillars) keeps it fast. Car BEV AP at IoU 0.5 (R40) over the
# cropped ground truth: with n < 41 cars even perfect boxes score about n / 40 * 100.
RANGE = [0.0, -10.24, -3.0, 20.48, 10.24, 1.0]
FLOOR = 20.0

pytestmark = pytest.mark.slow


def test_heatmap_loss_falls_and_car_ap_rises(tmp_path):
    torch.manual_seed(0)
    write_world(tmp_path, seed=5, train=FRAMES, val=0, test=0, progress=False)
    cfg = yaml.safe_load(Path("apps/detection3d/configs/tiny.yaml").read_text())
    module = Detection3DModule(**{**cfg["model"], "point_cloud_range": RANGE})
    data = Detection3DDataModule(str(tmp_path), class_names=cfg["data"]["class_names"],
                                 point_cloud_range=RANGE, augment=False)  # fmt: skip
    items = [data.dataset("train")[i] for i in range(FRAMES)]
    names = module.class_names
    gts = [(i["gt_boxes"].numpy(), [names[c] for c in i["gt_labels"]]) for i in items]
    cars = sum(n == "Car" for _, ns in gts for n in ns)
    assert 15 <= cars < 41, cars

    def car_ap() -> float:
        module.eval()
        with torch.no_grad():
            dets = [module.detect([i["points"]])[0] for i in items]
        module.train()
        dts = [(d["boxes"], [names[c] for c in d["labels"]], d["scores"]) for d in dets]
        return lidar_evaluate(gts, dts, names, min_overlaps={"Car": 0.5})["car_bev_ap"]

    before = car_ap()
    opt = torch.optim.AdamW(module.parameters(), lr=3e-3, weight_decay=0.01)
    losses = []
    for step in range(STEPS):
        batch = [items[(2 * step) % FRAMES], items[(2 * step + 1) % FRAMES]]
        out = module([b["points"] for b in batch])
        loss = module.model.head.loss(
            out, [b["gt_boxes"] for b in batch], [b["gt_labels"] for b in batch]
        )
        opt.zero_grad()
        loss["loss"].backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), 10.0)
        opt.step()
        losses.append(float(loss["hm_loss"]))
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10 / 3
    after = car_ap()
    assert before < 1.0 and after > FLOOR, (before, after, cars)
