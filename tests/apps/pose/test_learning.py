"""The lifter and the keypoint model learn on tiny synthetic worlds (bounded steps, single
thread)."""

from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from tessera.apps.pose.module import PoseLifting
from tessera.datamodules.pose.datamodule import H36MDataModule
from tessera.datamodules.pose.synth import generate

pytestmark = pytest.mark.slow
CONFIG = "apps/pose/configs/psa-tiny.yaml"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return generate(
        tmp_path_factory.mktemp("world"),
        seed=5,
        train=10,
        val=0,
        test=10,
        clips=(10, 0, 4),
        clip_frames=80,
    )


def _trainer(steps):
    return L.Trainer(
        max_steps=steps,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        limit_val_batches=0,
        accelerator="cpu",
    )


def test_lifter_learns(world):
    L.seed_everything(0)
    dm = H36MDataModule(
        str(world / "h36m"), frames=3, val_subjects=("S9",), batch_size=32, train_stride=2
    )
    module = PoseLifting(
        frames=3, dim=32, depth=2, heads=4, lr=3e-3, warmup_steps=10, flip_test=False
    )
    dm.setup("test")
    test = dm.datasets["test"]

    def mpjpe_mm():
        module.eval()
        with torch.no_grad():
            batch = [test[i] for i in range(0, len(test), 7)]
            pred = module(torch.stack([b["poses_2d"] for b in batch]))
            target = torch.stack([b["target"] for b in batch])
        return float((pred - target).norm(dim=-1).mean() * 1000)

    before = mpjpe_mm()
    _trainer(100).fit(module, dm)
    after = mpjpe_mm()
    assert before > 150 and after < 0.6 * before, (before, after)


def test_keypoint_model_learns(tmp_path):
    """The tiny PSA config (at half its input size, for the runtime) fits 16 images (no
    augmentation, scored on the same images: the held-out generalisation is the shipped
    checkpoint's test): the heatmap loss falls and the OKS AP (pycocotools, mmpose
    protocol) rises from zero."""
    import yaml

    from tessera.apps.pose.module import TopDownPose, evaluate_keypoints
    from tessera.datamodules.pose.datamodule import CocoKeypointDataModule

    root = generate(tmp_path, seed=5, train=16, val=0, test=0, clips=(0, 0, 0)) / "coco"
    config = yaml.safe_load((Path(__file__).parents[3] / CONFIG).read_text())
    sizes = {"input_size": [48, 64], "heatmap_size": [12, 16]}
    data = config["data"]["init_args"] | sizes | {"data_root": str(root), "batch_size": 16}
    data |= {"val_split": "train", "test_split": "train", "augment": False}
    L.seed_everything(0)
    dm = CocoKeypointDataModule(**data)
    hparams = config["model"]["init_args"] | sizes | {"lr": 5e-3, "warmup_steps": 10}
    module = TopDownPose(**hparams)
    dm.setup("fit")

    def oks_ap():
        module.eval()
        module._outputs = []
        with torch.no_grad():
            for batch in dm.val_dataloader():
                module._eval_step(batch)
        module.train()
        return evaluate_keypoints(module._outputs, dm.annotation_file("train"))["oks_ap"]

    losses = []

    class Losses(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            losses.append(float(outputs["loss"]))

    before = oks_ap()
    trainer = _trainer(100)
    trainer.callbacks.append(Losses())
    trainer.fit(module, dm)
    after = oks_ap()
    assert np.mean(losses[-5:]) < 0.2 * np.mean(losses[:5]), losses
    assert before < 0.02 and after > 0.15, (before, after)
