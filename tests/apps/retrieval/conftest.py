"""Shared fixtures: the real layouts written once per session, a tiny trained checkpoint."""

from pathlib import Path

import pytest
import yaml

from helpers.layouts import retrieval as layouts

TINY = Path(__file__).parents[3] / "apps/retrieval/configs/tiny.yaml"


@pytest.fixture(scope="session")
def datasets(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("retrieval-layouts")
    return {
        "msrvtt": layouts.write_msrvtt(root / "MSRVTT"),
        "msvd": layouts.write_msvd(root / "MSVD"),
        "generic": layouts.write_generic_csv(root / "mine"),
    }


def tiny_config(**model) -> dict:
    config = yaml.safe_load(TINY.read_text())
    return config["model"] | model


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A tiny X-Pool module exported untrained (weights are what they are; format matters)."""
    import torch

    from tessera.apps.retrieval import export
    from tessera.apps.retrieval.module import RetrievalModule

    torch.manual_seed(0)
    module = RetrievalModule(**tiny_config())
    return export(module, tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


def as_lightning_ckpt(weights: Path, out: Path) -> Path:
    """A Lightning checkpoint with the same weights (predict resumes from ``--ckpt_path``)."""
    import lightning as L

    from tessera.apps.retrieval import load

    module = load(weights).module
    trainer = L.Trainer(logger=False, enable_progress_bar=False, max_steps=0)
    trainer.strategy.connect(module)
    path = out / "tiny.ckpt"
    trainer.save_checkpoint(path)
    return path
