import pytest

from tessera.datamodules.segmentation.synth import generate


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    """A tiny synthetic world for CLI round trips."""
    return generate(
        tmp_path_factory.mktemp("segworld"),
        seed=1,
        splits={"train": 8, "val": 4, "test": 4},
        progress=False,
    )


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny convolutions: one intra-op thread is fastest and fair on a shared CPU."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
