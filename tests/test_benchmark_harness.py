"""The benchmark harness measures side by side, survives failing cases and writes tables."""

import importlib
import json
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def benchmarks(monkeypatch):
    """The top-level ``benchmarks`` folder (not installed: it runs from the checkout)."""
    monkeypatch.syspath_prepend(str(REPO))
    return importlib.import_module("benchmarks.harness"), importlib.import_module(
        "benchmarks.__main__"
    )


def test_compare_records_ratios_failures_and_writes_results(tmp_path, benchmarks):
    bench = benchmarks[0].Bench("toy", warmup=1, repeats=3)
    x = torch.randn(256, 256)

    def boom():
        raise MemoryError("too big")

    row = bench.compare(
        {"n": 256},
        {"mm": lambda: x @ x, "mm_twice": lambda: (x @ x) @ x, "broken": boom},
        baseline="mm",
        flops=2 * 256**3,
    )
    by_name = {c.name: c for c in row.cases}
    assert by_name["mm"].ratio_to_baseline == 1.0
    # Ratios are medians measured in the same run (no timing assertion: the machine is shared).
    expected = by_name["mm_twice"].median_s / by_name["mm"].median_s
    assert by_name["mm_twice"].ratio_to_baseline == pytest.approx(expected)
    assert by_name["mm"].extra["gflops"] > 0
    assert "MemoryError" in by_name["broken"].error

    md = bench.save(tmp_path)
    payload = json.loads((tmp_path / "toy.json").read_text())
    assert payload["machine"]["cores"] >= 1 and len(payload["rows"]) == 1
    assert "| n=256 | mm (baseline) |" in md.read_text()


def test_flops_per_case(benchmarks):
    bench = benchmarks[0].Bench("toy", warmup=0, repeats=1)
    x = torch.randn(64, 64)
    row = bench.compare(
        {"n": 64},
        {"mm": lambda: x @ x, "add": lambda: x + x, "copy": x.clone},
        baseline="mm",
        flops={"mm": 2 * 64**3, "add": 64**2},
        memory=False,
    )
    by_name = {c.name: c for c in row.cases}
    for name, work in (("mm", 2 * 64**3), ("add", 64**2)):
        assert by_name[name].extra["gflops"] == pytest.approx(work / by_name[name].median_s / 1e9)
    assert "gflops" not in by_name["copy"].extra  # no count given: no throughput


def test_peak_memory_sees_a_large_allocation(benchmarks):
    bench = benchmarks[0].Bench("toy", warmup=0, repeats=1)
    _, peak_mb = bench.measure(lambda: torch.ones(64 * 2**20 // 4).sum())  # 64 MiB buffer
    assert peak_mb > 32


def test_machine_benchmark_is_discovered(benchmarks):
    assert "machine" in benchmarks[1].available()
