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


def test_keypoint_rows_use_the_configs_input_size(pose_benchmark, monkeypatch):
    measured = []
    monkeypatch.setattr(
        pose_benchmark,
        "interleaved_cpu_ms",
        lambda cases, rounds: measured.append(sorted(cases)) or {n: [1.0] for n in cases},
    )
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
    assert measured == [["psa=none", "psa=parallel"]] * 2  # the overhead rows, CPU-timed
    assert sum("interleaved rounds" in n for n in bench.notes) == 2


def test_interleaved_cpu_time_takes_turns_and_counts_work(pose_benchmark):
    calls = []

    def work(n, name):
        def run():
            calls.append(name)
            total = 0
            for i in range(n):
                total += i * i
            return total

        return run

    times = pose_benchmark.interleaved_cpu_ms({"a": work(20000, "a"), "b": work(60000, "b")}, 5)
    assert calls == ["a", "b"] + ["a", "b"] * 5  # one warm-up each, then in turn
    assert [len(t) for t in times.values()] == [5, 5]
    assert 1.5 < min(times["b"]) / min(times["a"]) < 6  # CPU time follows the work (3x)
