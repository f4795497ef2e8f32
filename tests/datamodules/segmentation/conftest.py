import pytest

from tessera.datamodules.segmentation.synth import generate


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    """A tiny synthetic world (all three layouts), generated once per session."""
    return generate(
        tmp_path_factory.mktemp("segworld"),
        seed=3,
        splits={"train": 6, "val": 3, "test": 3},
        progress=False,
    )
