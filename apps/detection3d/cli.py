"""``tessera detection3d fit|validate|test|predict|synth|evaluate`` (also ``tessera-detection3d``).

``evaluate --checkpoint`` takes a registry name or weight file (the model is run on the
split), or a folder of KITTI result files (``<id>.txt`` with score), which are scored as they
are, like OpenPCDet's ``kitti_object_eval_python``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from tqdm import tqdm

from tessera.apps.common.cli import AppCommands, EvaluateRequest, run_app
from tessera.apps.detection3d.module import Detection3DModule, frame_metrics
from tessera.apps.detection3d.scoring import score_result_folder
from tessera.datamodules.common import SkippedItem
from tessera.datamodules.detection3d import synth
from tessera.datamodules.detection3d.datamodule import Detection3DDataModule


def _rounded(metrics: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 4) for k, v in metrics.items()}


@torch.no_grad()
def evaluate(request: EvaluateRequest) -> dict[str, float]:
    """AP in percent (KITTI rules on KITTI layouts: ``car_bev_ap_moderate``, ``car_3d_ap_hard``,
    ..., R40; ``..._ap_r11_...`` for R11; custom layouts: ``<class>_bev_ap`` / ``_3d_ap``)
    and ``n`` frames."""
    if Path(request.checkpoint).is_dir():
        metrics = score_result_folder(request.data, request.split, request.checkpoint)
        return _rounded(metrics) | {
            "n": len(
                (Path(request.data) / "ImageSets" / f"{request.split}.txt").read_text().split()
            )
        }
    from tessera.apps.detection3d import load

    detector = load(request.checkpoint, device=request.device)
    data = Detection3DDataModule(
        request.data, class_names=detector.class_names, point_cloud_range=detector.point_cloud_range
    )
    if data.layout == "folder":
        raise ValueError(f"{request.data}: evaluation needs a KITTI or custom layout with labels")
    dataset = data.dataset(request.split)
    frames, dets = [], []
    for i in tqdm(range(len(dataset)), desc=f"evaluate {request.split}", file=sys.stderr):
        item = dataset[i]
        if isinstance(item, SkippedItem):
            raise ValueError(item.reason)
        frames.append(item["frame"])
        dets.append(detector.module.detect([item["points"]])[0])
    return _rounded(frame_metrics(frames, dets, detector.class_names)) | {"n": len(frames)}


COMMANDS = AppCommands(
    task="detection3d",
    model_class=Detection3DModule,
    datamodule_class=Detection3DDataModule,
    synth=synth.main,
    evaluate=evaluate,
    default_split="val",
)


def main(argv: list[str] | None = None) -> int:
    return run_app(COMMANDS, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    raise SystemExit(main())
