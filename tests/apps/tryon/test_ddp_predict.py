"""Batch try-on with 2 DDP CPU processes writes the same ``<person>___<cloth>.png`` files and
summary as one process: the sampling noise depends on (seed, item) only, and each item's
result does not depend on which other items share its batch."""

import json
import os
import subprocess
import sys

import pytest
import torch

from helpers.layouts import tryon as layouts
from tessera.apps.tryon.api import save_weights
from tessera.apps.tryon.module import TryOnModule

from .conftest import TINY_NET, tiny_args

pytestmark = pytest.mark.slow


def _predict(root, data, weights, out, devices):
    argv = [
        sys.executable, "-m", "tessera.apps.tryon.cli", "predict", *tiny_args(data, out / "run"),
        f"--model.weights={weights}", f"--model.predict_out={out}",
        "--trainer.devices", str(devices), "--trainer.strategy", "ddp" if devices > 1 else "auto",
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env, cwd=root)
    assert result.returncode == 0, result.stderr[-3000:]


def test_ddp_two_processes_write_the_same_files_as_one(request, tmp_path):
    data = layouts.write_vitonhd(tmp_path / "v", n_train=1, n_test=3)  # 3: uneven over 2 ranks
    torch.manual_seed(0)
    module = TryOnModule(net=TINY_NET, ddim_steps=2)
    with torch.no_grad():  # a non-trivial local branch: the zero-initialised fusion opened
        for layer in module.model.attn.values():
            for p in layer.attn.parameters():
                if p.ndim == 1 and not p.any():
                    p.fill_(0.5)
    weights = save_weights(tmp_path / "w.safetensors", module, (32, 24))
    one, two = tmp_path / "one", tmp_path / "two"
    _predict(request.config.rootpath, data, weights, one, 1)
    _predict(request.config.rootpath, data, weights, two, 2)
    names = sorted(p.name for p in one.glob("*.png"))
    assert len(names) == 3 and names == sorted(p.name for p in two.glob("*.png"))
    for name in names:
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
    s1 = json.loads((one / "summary.json").read_text())
    s2 = json.loads((two / "summary.json").read_text())
    assert s1["written"] == s2["written"] == 3 and s1["skipped"] == s2["skipped"] == []
    for key in ("ssim", "psnr", "masked_l1"):
        assert s1["metrics"][key] == pytest.approx(s2["metrics"][key], rel=1e-6)
