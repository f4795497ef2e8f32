"""``benchmarks/pose.py`` times each keypoint network at its config's input size: a stand-in
for the harness runs every case once (no timing) and records what it was given."""

import importlib
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "apps" / "pose" / "configs"


class RecordingBench:
    """Calls each keypoint case once and keeps ``(params, {case: output shape})``."""

    quick = True

    def __init__(self):
        self.rows, self.notes = [], []

    def note(self, text: str) -> None:
        self.notes.append(text)

    def compare(self, params, cases, baseline):
        shapes = {n: tuple(fn().shape) for n, fn in cases.items()} if "crop" in params else {}
        self.rows.append((params, shapes))
        return SimpleNamespace(cases=[SimpleNamespace(name=n, median_s=1.0) for n in cases])


@pytest.fixture
def pose_benchmark(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))  # benchmarks/ runs from the checkout
    return importlib.import_module("benchmarks.pose")


def _sizes(config: str):
    hp = yaml.safe_load((CONFIGS / config).read_text())["model"]["init_args"]
    return hp["input_size"], hp["heatmap_size"]  # both [w, h]


def test_keypoint_rows_use_the_configs_input_size(pose_benchmark):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        bench = RecordingBench()
        pose_benchmark.run(bench)
    finally:
        torch.set_num_threads(threads)
    rows = {p["model"]: (p, shapes) for p, shapes in bench.rows if "crop" in p}
    for model, config in (
        ("tiny (ResNet-18 stride 8, head PSA)", "psa-tiny.yaml"),
        ("ResNet-50 SimpleBaseline, PSA in every block", "psa-resnet50-coco.yaml"),
    ):
        (w, h), (hw, hh) = _sizes(config)
        params, shapes = rows[model]
        assert params["crop"] == f"{h}x{w}", model
        assert set(shapes.values()) == {(1, 17, hh, hw)}, (model, shapes)  # config's heatmaps
    assert rows["tiny (ResNet-18 stride 8, head PSA)"][0]["crop"] == "128x96"
