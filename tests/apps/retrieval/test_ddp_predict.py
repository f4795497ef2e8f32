"""Batch feature extraction (``predict`` → index) with 2 DDP CPU processes writes the same
index as with one: every video once, the same features, the same manifest."""

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from .conftest import TINY, as_lightning_ckpt

pytestmark = pytest.mark.slow


def _predict(root, videos, ckpt, out, devices):
    argv = [
        sys.executable, "-m", "tessera.apps.retrieval.cli", "predict", "-c", str(TINY),
        f"--data.predict_dir={videos}", "--data.eval_batch_size=2",
        "--trainer.enable_progress_bar=false", "--trainer.logger=false",
        "--trainer.callbacks+=tessera.apps.retrieval.writer.FeatureWriter",
        f"--trainer.callbacks.output_dir={out}", f"--ckpt_path={ckpt}",
        "--trainer.devices", str(devices), "--trainer.strategy", "ddp" if devices > 1 else "auto",
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env, cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]


def test_ddp_two_processes_write_the_same_index_as_one(
    request, datasets, tiny_checkpoint, tmp_path
):
    videos = datasets["msrvtt"] / "videos/all"  # 8 videos: an uneven split over 2 ranks + pad
    ckpt = as_lightning_ckpt(tiny_checkpoint, tmp_path)
    one, two = tmp_path / "one", tmp_path / "two"
    _predict(request.config.rootpath, videos, ckpt, one, 1)
    _predict(request.config.rootpath, videos, ckpt, two, 2)
    items = sorted(p.name for p in (one / "items").iterdir())
    assert len(items) == len(list(videos.glob("*.mp4"))) == 8
    assert items == sorted(p.name for p in (two / "items").iterdir())
    for name in items:
        a, b = load_file(one / "items" / name), load_file(two / "items" / name)
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key], atol=1e-5, rtol=1e-5)
    m1 = json.loads((one / "manifest.json").read_text())
    m2 = json.loads((two / "manifest.json").read_text())
    assert m1 == m2 and m1["num_videos"] == 8
    f1, f2 = load_file(one / "features.safetensors"), load_file(two / "features.safetensors")
    assert f1.keys() == f2.keys()
    for key in f1:
        torch.testing.assert_close(f1[key], f2[key], atol=1e-5, rtol=1e-5)
    s1 = json.loads((one / "summary.json").read_text())
    s2 = json.loads((two / "summary.json").read_text())
    assert s1["written"] == s2["written"] == 8
