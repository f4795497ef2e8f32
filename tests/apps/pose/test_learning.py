"""The lifter learns on a tiny synthetic world (bounded steps, single thread)."""

import lightning as L
import pytest
import torch

from tessera.apps.pose.module import PoseLifting
from tessera.datamodules.pose.datamodule import H36MDataModule
from tessera.datamodules.pose.synth import generate

pytestmark = pytest.mark.slow


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
