"""Lightning DDP works on this machine: 2 CPU processes (gloo) for fit and predict."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).parent / "helpers" / "ddp_toy.py"


def test_ddp_fit_and_predict_on_two_cpu_processes(tmp_path):
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]

    fit = json.loads((tmp_path / "fit.json").read_text())
    assert fit["world_size"] == 2
    assert fit["loss"] < 0.05  # y = 3x + 1 was learned

    shards = [torch.load(tmp_path / f"pred-rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert all(shards), "each rank wrote its own predictions"
    indices = sorted(i for shard in shards for i, _ in shard)
    # The distributed predict sampler pads uneven shards by repeating items; every item is
    # present, and no rank is missing work.
    assert set(indices) == set(range(37))
    for shard in shards:
        for i, pred in shard:
            assert abs(pred - (3 * i / 37 + 1)) < 0.3
