"""``tessera pose`` (also ``tessera-pose``): fit | validate | test | predict | synth | evaluate.

Models and data are picked by class in the config: ``TopDownPose`` +
``CocoKeypointDataModule`` (2-D keypoints) or ``PoseLifting`` + ``H36MDataModule`` (lifting);
see ``apps/pose/configs/``. ``predict --video CLIP --checkpoint 2D --lifter 3D --out DIR``
runs the video pipeline instead (keypoints per frame → temporal lifting → npz + HTML).
``predict --overlays DIR`` (short for ``--model.init_args.overlays DIR``) also draws each
input image's predicted skeletons into ``DIR/<image stem>.png``.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from tessera.apps.common.cli import AppCommands, EvaluateRequest, run_app
from tessera.apps.pose.module import PoseLifting, PoseTask, evaluate_keypoints
from tessera.datamodules.pose.datamodule import H36MDataModule, PoseDataModule
from tessera.datamodules.pose.synth import main as synth_main


def _evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--detections",
        default=None,
        help="2-D: person boxes in the COCO results format (default: GT boxes)",
    )
    parser.add_argument("--det-score-threshold", type=float, default=0.0)
    parser.add_argument(
        "--keypoints",
        default="gt",
        help="lifting: 2-D source, data_2d_h36m_<keypoints>.npz (gt, cpn_ft_h36m_dbb)",
    )
    parser.add_argument(
        "--subjects",
        nargs="*",
        default=None,
        help="lifting: subjects to score (default: by --split, S9 S11 for test)",
    )
    parser.add_argument("--no-flip-test", action="store_true", help="turn the flip test off")


@torch.no_grad()
def evaluate(request: EvaluateRequest) -> dict:
    """2-D: COCO ``oks_ap``/``oks_ap50``/... as mmpose's ``CocoMetric`` plus ``pck_0.05``,
    ``pck_0.2``, ``epe`` (GT boxes); lifting: ``mpjpe_mm``, ``p_mpjpe_mm``, ``n_mpjpe_mm``
    averaged over actions, with the per-action table under ``per_action``."""
    from torch.utils.data import DataLoader

    from tessera.apps.pose.api import load_module
    from tessera.datamodules.common import collate_skipping
    from tessera.datamodules.pose.datamodule import CocoKeypointDataModule

    module = load_module(request.checkpoint).to(request.device)
    opts = request.options
    if opts.get("no_flip_test"):
        module.hparams.flip_test = False
    hp = module.hparams
    if isinstance(module, PoseLifting):
        data = H36MDataModule(request.data, keypoints=opts.get("keypoints", "gt"), frames=hp.frames)
        subjects = opts.get("subjects") or (
            data.hparams.test_subjects
            if request.split == "test"
            else data.hparams.train_subjects
            if request.split == "train"
            else data.hparams.val_subjects
        )
        return evaluate_lifting(module, data.sequences(subjects)) | {"subjects": list(subjects)}
    data = CocoKeypointDataModule(
        request.data,
        input_size=hp.input_size,
        heatmap_size=hp.heatmap_size,
        codec=hp.codec,
        sigma=hp.sigma,
        unbiased=hp.unbiased,
        use_udp=hp.use_udp,
        detections=opts.get("detections"),
        det_score_threshold=opts.get("det_score_threshold", 0.0),
    )
    dataset = data._dataset(data.instances(request.split, train=False), False, "raise")
    loader = DataLoader(
        dataset,
        batch_size=request.batch_size,
        num_workers=request.num_workers,
        collate_fn=collate_skipping(),
    )
    module._outputs = []
    for batch in loader:
        batch = {k: v.to(request.device) if torch.is_tensor(v) else v for k, v in batch.items()}
        module._eval_step(batch)
    values = evaluate_keypoints(
        module._outputs,
        data.annotation_file(request.split),
        hp.nms_threshold,
        hp.keypoint_score_thr,
    )
    return {k: round(v, 4) for k, v in values.items()} | {
        "n": len(dataset),
        "boxes": data.box_source[request.split],
    }


def evaluate_lifting(module: PoseLifting, sequences) -> dict:
    """Protocol #1/#2 over whole clips (every frame, edge-padded windows)."""
    from tessera.apps.pose.metrics import lifting_report

    preds, targets, actions = [], [], []
    for seq in sequences:
        preds.append(module.lift_sequence(seq.poses_2d))
        targets.append(seq.poses_3d)
        actions += [seq.action] * len(seq.poses_2d)
    report = lifting_report(np.concatenate(preds), np.concatenate(targets), actions)
    rounded = {k: round(v, 2) for k, v in report.items() if k != "per_action"}
    return rounded | {"frames": len(actions), "per_action": report["per_action"]}


def _predict_video(argv: list[str]) -> int:
    from tessera.apps.pose.video import main as video_main

    return video_main(argv)


COMMANDS = AppCommands(
    task="pose",
    model_class=PoseTask,
    datamodule_class=PoseDataModule,
    synth=synth_main,
    evaluate=evaluate,
    default_split="val",
    cli_kwargs={"subclass_mode_model": True, "subclass_mode_data": True},
    evaluate_arguments=_evaluate_arguments,
)


def _expand_overlays(argv: list[str]) -> list[str]:
    """``--overlays DIR`` / ``--overlays=DIR`` → ``--model.init_args.overlays=DIR``."""
    out, args = [], iter(argv)
    for arg in args:
        if arg == "--overlays":
            folder = next(args, None)
            if folder is None or folder.startswith("-"):
                raise SystemExit("error: --overlays needs a folder (--overlays DIR)")
            arg = f"--overlays={folder}"
        if arg.startswith("--overlays="):
            arg = "--model.init_args.overlays=" + arg.split("=", 1)[1]
        out.append(arg)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["predict"] and "--video" in argv:
        return _predict_video(argv[1:])
    if argv[:1] == ["predict"]:
        argv = _expand_overlays(argv)
    return run_app(COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
