"""Batch separation with 2 DDP CPU processes writes the same files as with one."""

import json
import os
import subprocess
import sys

import pytest

from helpers.separation_cli import TINY, csv_rows

pytestmark = pytest.mark.slow


def _predict(root, world, weights, out, devices):
    argv = [
        sys.executable, "-m", "tessera.apps.separation.cli", "predict", *TINY,
        "--data.data", str(world), "--data.predict_split", "test",
        "--model.init_weights", str(weights), "--model.predict_out", str(out),
        "--trainer.devices", str(devices),
        "--trainer.strategy", "ddp" if devices > 1 else "auto",
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env, cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]


def test_ddp_two_processes_write_the_same_files_as_one(request, small_world, weights, tmp_path):
    root = request.config.rootpath
    one, two = tmp_path / "one", tmp_path / "two"
    _predict(root, small_world, weights, one, 1)
    _predict(root, small_world, weights, two, 2)
    tracks = sorted(p.name for p in one.glob("*.wav"))
    assert len(tracks) == 6 and tracks == sorted(p.name for p in two.glob("*.wav"))
    for name in tracks:
        assert (one / name).read_bytes() == (two / name).read_bytes()
    by_item = lambda rows: {r["item_id"]: r for r in rows}  # noqa: E731
    assert by_item(csv_rows(one / "metrics.csv")) == by_item(csv_rows(two / "metrics.csv"))
    s1 = json.loads((one / "summary.json").read_text())
    s2 = json.loads((two / "summary.json").read_text())
    assert s1["written"] == s2["written"] == 3
    assert s1["metrics"]["si_sdri"] == pytest.approx(s2["metrics"]["si_sdri"])
