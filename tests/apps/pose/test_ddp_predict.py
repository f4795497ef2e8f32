"""Batch inference with 2 DDP CPU processes writes the same outputs as with one: COCO
keypoint results (per-box item files and the results json) and lifted npz clips."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tessera.apps.pose import export
from tessera.apps.pose.cli import main
from tessera.apps.pose.module import PoseLifting, TopDownPose

pytestmark = pytest.mark.slow

CONFIGS = Path(__file__).parents[3] / "apps" / "pose" / "configs"
CASES = {
    "keypoints": ("psa-tiny.yaml", TopDownPose, ["--data.init_args.predict_split=val"]),
    "lifting": ("lifter-tiny.yaml", PoseLifting, []),
}


def _predict(root, config, data, weights, out, devices, extra):
    """One process in this one (as the CLI tests do); DDP in a subprocess, which Lightning's
    launcher re-runs for rank 1."""
    argv = [
        "predict", "-c", str(CONFIGS / config),
        f"--data.init_args.data_root={data}", "--data.init_args.eval_batch_size=1",
        f"--model.init_args.weights={weights}", f"--model.init_args.predict_out={out}",
        "--trainer.enable_progress_bar=false", "--trainer.devices", str(devices),
        "--trainer.strategy", "ddp" if devices > 1 else "auto", *extra,
    ]  # fmt: skip
    if devices == 1:
        assert main(argv) == 0
        return
    argv = [sys.executable, "-m", "tessera.apps.pose.cli", *argv]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env, cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.parametrize("case", sorted(CASES))
def test_ddp_two_processes_write_the_same_outputs_as_one(
    case, request, coco_root, h36m_root, tmp_path
):
    config, cls, extra = CASES[case]
    torch.manual_seed(0)
    hp = yaml.safe_load((CONFIGS / config).read_text())["model"]["init_args"]
    weights = export(cls(**hp), tmp_path / "weights.safetensors")
    data = coco_root if case == "keypoints" else h36m_root
    one, two = tmp_path / "one", tmp_path / "two"
    for out, devices in ((one, 1), (two, 2)):
        _predict(request.config.rootpath, config, data, weights, out, devices, extra)
    s1 = json.loads((one / "summary.json").read_text())
    s2 = json.loads((two / "summary.json").read_text())
    assert s1["written"] == s2["written"] > 0
    if case == "keypoints":
        files = sorted(p.name for p in (one / "items").glob("*.json"))
        assert files == sorted(p.name for p in (two / "items").glob("*.json"))
        for name in files:
            a, b = (json.loads((d / "items" / name).read_text()) for d in (one, two))
            assert np.allclose(a["keypoints"], b["keypoints"], atol=1e-4), name
        r1, r2 = (json.loads((d / "person_keypoints_results.json").read_text()) for d in (one, two))
        key = lambda r: (r["image_id"], r["keypoints"][:2])  # noqa: E731
        r1, r2 = sorted(r1, key=key), sorted(r2, key=key)
        assert len(r1) == len(r2) > 0
        for a, b in zip(r1, r2, strict=True):
            assert a["image_id"] == b["image_id"]
            assert np.allclose(a["keypoints"], b["keypoints"], atol=1e-4)
    else:
        clips = sorted(str(p.relative_to(one)) for p in one.rglob("*.npz"))
        assert clips == sorted(str(p.relative_to(two)) for p in two.rglob("*.npz"))
        for name in clips:
            with np.load(one / name) as a, np.load(two / name) as b:
                assert np.allclose(a["joints_3d"], b["joints_3d"], atol=1e-5), name
