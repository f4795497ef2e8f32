"""Learning test: on a tiny paper-doll world the diffusion loss falls and the SSIM of DDIM
samples rises within a bounded number of steps."""

import lightning as L
import pytest
import torch

from tessera.apps.tryon.metrics import TryOnScores
from tessera.apps.tryon.module import TryOnModule, to_model_space
from tessera.datamodules.common import collate_skipping
from tessera.datamodules.tryon import TryOnDataset, list_records
from tessera.datamodules.tryon.synth import generate

from .conftest import TINY_NET


def held_out_scores(module, batch) -> tuple[float, float]:
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        loss = float(module.diffusion_loss(to_model_space(batch), g))
    scores = TryOnScores()
    module.update_scores(scores, module.generate(batch, steps=5), batch)
    return loss, scores.compute()["ssim"]


@pytest.mark.slow
def test_loss_falls_and_ssim_rises(tmp_path):
    world = generate(tmp_path / "w", seed=7, train=8, val=0, test=2, size=(32, 24))
    train = TryOnDataset(list_records(world, "train"), (32, 24), side_view="skeleton")
    test = TryOnDataset(list_records(world, "test"), (32, 24))
    batch = collate_skipping()([test[i] for i in range(len(test))])
    torch.manual_seed(0)
    module = TryOnModule(net=TINY_NET, lr=3e-3, warmup_steps=10, ddim_steps=5)
    before = held_out_scores(module.eval(), batch)
    loader = torch.utils.data.DataLoader(
        train, batch_size=6, shuffle=True, collate_fn=collate_skipping()
    )
    trainer = L.Trainer(
        max_steps=150,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, loader)
    after = held_out_scores(module.eval(), batch)
    assert after[0] < 0.7 * before[0], (before, after)
    # measured on this world: loss 1.89 → 0.70, SSIM of 5-step samples 0.21 → 0.37
    assert after[1] > before[1] + 0.05, (before, after)
