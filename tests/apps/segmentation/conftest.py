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
