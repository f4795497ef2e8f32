"""Tiny try-on settings shared by the app tests: a small net at 32×24, single-threaded torch."""

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


TINY_NET = {
    "channels": [8, 16, 32],
    "context_dim": 16,
    "heads": 1,
    "dim_head": 8,
    "attention_levels": [1, 2],
    "pose_grid": [2, 2],
}


def tiny_args(data, root) -> list[str]:
    """CLI options for a few quick steps at 32×24 on ``data``."""
    import json

    return [
        "-c",
        "apps/tryon/configs/tiny.yaml",
        f"--data.data={data}",
        "--data.size=[32, 24]",
        f"--model.net={json.dumps(TINY_NET)}",
        "--data.batch_size=2",
        "--data.eval_batch_size=4",
        "--model.ddim_steps=2",
        "--model.val_ddim_steps=2",
        "--trainer.enable_progress_bar=false",
        "--trainer.logger=false",
        f"--trainer.default_root_dir={root}",
    ]


@pytest.fixture
def in_repo(monkeypatch, request):
    monkeypatch.chdir(request.config.rootpath)
