"""Batch detection with 2 DDP CPU processes writes the same files as with one (slow)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from helpers.layouts import detection3d as layouts
from tessera.apps.detection3d import api
from tessera.apps.detection3d.module import Detection3DModule

CONFIG = "apps/detection3d/configs/tiny.yaml"
pytestmark = pytest.mark.slow


def _predict(root: Path, data: Path, weights: Path, out: Path, devices: int) -> None:
    argv = [
        sys.executable, "-m", "tessera.apps.detection3d.cli", "predict", "-c", CONFIG,
        "--data.data", str(data), "--data.predict_split", "val",
        "--model.weights", str(weights), "--model.predict_out", str(out),
        "--trainer.devices", str(devices), "--trainer.logger", "false",
        "--trainer.enable_progress_bar", "false",
        "--trainer.strategy", "ddp" if devices > 1 else "auto",
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env, cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]


def test_ddp_two_processes_write_the_same_files_as_one(request, tmp_path):
    root = request.config.rootpath
    data = layouts.write_kitti(tmp_path / "kitti", train=1, val=5, test=1)
    torch.manual_seed(0)
    model = yaml.safe_load((root / CONFIG).read_text())["model"]
    # a low threshold so that the untrained head still writes boxes to compare
    module = Detection3DModule(**{**model, "head": {**model["head"], "score_threshold": 0.05}})
    weights = api.save(tmp_path / "random.safetensors", module.eval())
    one, two = tmp_path / "one", tmp_path / "two"
    _predict(root, data, weights, one, 1)
    _predict(root, data, weights, two, 2)
    frames = lambda out: sorted(str(p.relative_to(out)) for p in out.glob("*/*.*"))  # noqa: E731
    files = frames(one)
    assert len(files) == 10 and files == frames(two)
    for name in files:
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
    assert sum(len((one / f).read_text().splitlines()) for f in files if f.endswith(".txt")) > 0
    s1 = json.loads((one / "summary.json").read_text())
    s2 = json.loads((two / "summary.json").read_text())
    assert s1["written"] == s2["written"] == 5
    assert s1["metrics"] == pytest.approx(s2["metrics"])
