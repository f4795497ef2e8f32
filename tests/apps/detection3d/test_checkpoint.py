"""The shipped checkpoint: its registry entry, the issue's threshold (car BEV AP@0.7 R40
moderate >= 60 on the synthetic test split, and on worlds of seeds nobody trained on), and
the recorded number reproduced by ``evaluate`` on a fresh slice of an unseen-seed world."""

import pytest

from tessera.apps.common.checkpoints import registry
from tessera.apps.common.cli import EvaluateRequest

NAME = "detection3d-dsvt-tiny"
THRESHOLD = 60.0

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def entry():
    entries = registry()
    if NAME not in entries:
        pytest.skip(f"{NAME} is not registered (python -m tessera.apps.detection3d.recipes)")
    return entries[NAME]


def test_registry_entry_is_complete_and_meets_the_threshold(entry):
    from tessera.apps.detection3d import recipes

    assert entry.task == "detection3d" and entry.path.is_file()
    assert entry.path.stat().st_size <= 15 * 2**20
    assert set(recipes.KEYS) <= set(entry.metrics)
    assert {"seed", "train", "val", "test", "eval_seeds", "steps"} <= set(entry.data)
    m = entry.metrics
    unseen = [m[f"car_bev_ap_moderate_seed{s}"] for s in entry.data["eval_seeds"]]
    assert m["car_bev_ap_moderate"] >= THRESHOLD, m["car_bev_ap_moderate"]
    assert min(unseen) >= THRESHOLD, unseen


def test_loads_and_reproduces_its_metric_on_a_fresh_slice(entry, tmp_path):
    from tessera.apps.detection3d import api, cli, recipes

    detector = api.load(NAME)
    assert detector.class_names == ["Car", "Pedestrian", "Cyclist"]
    world = recipes.slice_world(tmp_path / "slice")
    scores = cli.evaluate(EvaluateRequest(checkpoint=NAME, data=str(world), split="test"))
    key = f"car_bev_ap_moderate_seed{recipes.EVAL_SEEDS[0]}_first{recipes.SLICE}"
    assert scores["n"] == recipes.SLICE
    assert scores["car_bev_ap_moderate"] == pytest.approx(entry.metrics[key], abs=0.05)
