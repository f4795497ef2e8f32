"""``make gpu-check`` / ``python -m benchmarks gpu`` without a GPU: says so and exits 0."""

import importlib
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def gpu(monkeypatch):
    """``benchmarks.gpu`` (the top-level ``benchmarks`` folder runs from the checkout)."""
    monkeypatch.syspath_prepend(str(REPO))
    return importlib.import_module("benchmarks.gpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU behaviour")
def test_gpu_check_without_gpu_says_so_and_exits_zero(gpu, tmp_path, capsys):
    main = importlib.import_module("benchmarks.__main__").main  # python -m benchmarks
    out = tmp_path / "report.md"
    assert main(["gpu", "--out", str(out)]) == 0
    assert "no GPU found" in capsys.readouterr().out
    assert not out.exists()


def test_makefile_target_runs_the_gpu_check():
    makefile = (REPO / "Makefile").read_text()
    target = makefile[makefile.index("\ngpu-check:") :].split("\n\n")[0]
    assert "-m benchmarks gpu" in target


def test_targets_are_checked_per_attention_row(gpu):
    from benchmarks.harness import Bench, CaseResult, Row

    bench = Bench("t")
    params = {"mode": "fwd", "dtype": "float16", "D": 64, "N": 4096, "B": 4, "H": 32}
    for ratio, causal in ((1.25, False), (1.0, True)):  # 0.8x and 1.0x SDPA's throughput
        cases = [
            CaseResult("sdpa_flash", 1.0, 1.0, 1.0, None, 1.0),
            CaseResult("triton", ratio, ratio, ratio, None, ratio),
        ]
        bench.rows.append(Row(params | {"causal": causal}, "sdpa_flash", cases))
    bench.rows.append(Row(params | {"N": 1024, "causal": False}, "sdpa_flash", cases))
    lines = gpu.target_lines(bench)
    assert len(lines) == 2  # N < 2k is not a target row
    assert "0.80x SDPA flash (BELOW 0.9x)" in lines[0]
    assert "1.00x SDPA flash (meets 0.9x)" in lines[1]
