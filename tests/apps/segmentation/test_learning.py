"""Learning tests: the tiny configs learn on a small synthetic world in a bounded number of
steps (chance level -> threshold)."""

import pytest
import torch

from tessera.apps.segmentation.cli import evaluate_grounding, evaluate_semantic
from tessera.apps.segmentation.recipes import CONFIGS
from tessera.datamodules.segmentation import GroundingDataModule, SemanticDataModule
from tessera.datamodules.segmentation.synth import generate

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def learn_world(tmp_path_factory):
    return generate(
        tmp_path_factory.mktemp("learnworld"),
        seed=7,
        splits={"train": 600, "val": 0, "test": 60},
        progress=False,
    )


def _fit(module, datamodule, steps, tmp_path):
    import lightning as L

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small convolutions: one thread is fastest on a shared CPU
    try:
        L.Trainer(
            max_steps=steps,
            accelerator="cpu",
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            limit_val_batches=0,
            default_root_dir=tmp_path,
        ).fit(module, datamodule=datamodule)
    finally:
        torch.set_num_threads(threads)
    return module.eval()


def _init_args(config: str) -> dict:
    import yaml

    return dict(yaml.safe_load((CONFIGS / config).read_text())["model"]["init_args"])


def test_semantic_tiny_learns(learn_world, tmp_path):
    from tessera.apps.segmentation.module import SemanticSegmentation

    torch.manual_seed(0)
    module = SemanticSegmentation(**_init_args("semantic-tiny.yaml"))
    dm = SemanticDataModule(str(learn_world), num_classes=4, batch_size=16)
    before = evaluate_semantic(module.eval(), dm, "test")["miou"]
    after = evaluate_semantic(_fit(module.train(), dm, 300, tmp_path), dm, "test")["miou"]
    assert before < 0.3 and after > 0.6, (before, after)


def test_grounding_tiny_learns_and_uses_the_text(learn_world, tmp_path):
    from tessera.apps.segmentation.module import ReferringSegmentation

    torch.manual_seed(0)
    module = ReferringSegmentation(**_init_args("grounding-tiny.yaml"))
    dm = GroundingDataModule(str(learn_world / "grounding"), batch_size=16)
    before = evaluate_grounding(module.eval(), dm, "test")["giou"]
    _fit(module.train(), dm, 400, tmp_path)
    after = evaluate_grounding(module, dm, "test")
    control = evaluate_grounding(module, dm, "test", unrelated_text=True)
    assert before < 0.3 and after["giou"] > 0.4, (before, after)
    assert after["giou"] - control["giou"] > 0.1
