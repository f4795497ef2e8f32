"""Shared fixtures: tiny espeak-ng worlds generated once per session, single-threaded torch.

Torch's intra-op threads are limited to 1 for these tests: with other processes on the same
2 cores, OpenMP threads spinning against each other make CPU training ~20x slower.
"""

from pathlib import Path

import pytest
import torch

from helpers.separation_cli import tiny_model_config
from tessera.apps.separation import save_weights
from tessera.apps.separation.module import SeparationModule
from tessera.datamodules.separation import synth


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_world(tmp_path_factory, name: str, **sizes) -> Path:
    if synth.missing_voices():
        pytest.skip(f"missing {synth.missing_voices()} (bash scripts/system-deps.sh installs them)")
    return synth.generate(tmp_path_factory.mktemp(name), **sizes)


@pytest.fixture(scope="session")
def small_world(tmp_path_factory) -> Path:
    """6 train, 2 val, 3 test mixtures at 8 kHz (seed 3)."""
    return make_world(tmp_path_factory, "small-world", seed=3, train=6, val=2, test=3)


@pytest.fixture
def weights(tmp_path):
    """A random tiny MossFormer as a weight file of the app."""
    cfg = tiny_model_config()
    module = SeparationModule(arch=cfg["arch"], num_spks=2, sample_rate=8000, net=cfg["net"])
    return save_weights(tmp_path / "tiny.safetensors", module)
