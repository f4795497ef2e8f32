"""The shipped checkpoints reproduce their registry metrics on a freshly generated test split
of the recorded seed, pass the thresholds on another seed, and the grounding checkpoint
needs the text (an unrelated question loses >= 0.3 gIoU)."""

import pytest

from tessera.apps.common.checkpoints import registry
from tessera.apps.common.cli import EvaluateRequest
from tessera.apps.segmentation.cli import evaluate
from tessera.datamodules.segmentation.synth import generate

pytestmark = pytest.mark.slow

THRESHOLDS = {
    "segmentation-semantic-tiny": {"miou": 0.75},
    "segmentation-grounding-tiny": {"giou": 0.6},
}


def _world(tmp_path_factory, seed, n_test):
    splits = {"train": 0, "val": 0, "test": n_test}
    return generate(tmp_path_factory.mktemp(f"ckptworld{seed}"), seed, splits, progress=False)


@pytest.mark.parametrize("name", sorted(THRESHOLDS))
def test_checkpoint_reproduces_registry_and_generalises(name, tmp_path_factory):
    entry = registry().get(name)
    if entry is None:
        pytest.skip(f"{name} not registered yet")
    data = entry.data
    recorded = _world(tmp_path_factory, data["seed"], data["splits"]["test"])
    metrics = evaluate(EvaluateRequest(checkpoint=name, data=str(recorded), batch_size=32))
    for key, value in entry.metrics.items():
        assert metrics[key] == pytest.approx(value, abs=0.01), key
    other = _world(tmp_path_factory, data["seed"] + 1, data["splits"]["test"])
    metrics_other = evaluate(EvaluateRequest(checkpoint=name, data=str(other), batch_size=32))
    for key, threshold in THRESHOLDS[name].items():
        assert metrics[key] >= threshold and metrics_other[key] >= threshold, key
    if "giou" in metrics:
        assert metrics["giou"] - metrics["giou_unrelated_text"] >= 0.3
        assert metrics_other["giou"] - metrics_other["giou_unrelated_text"] >= 0.3
