"""Batch prediction with 2 DDP CPU processes writes the same files as with one."""

import json
import os
import subprocess
import sys

import pytest
import yaml

from tessera.apps.segmentation.recipes import CONFIGS

pytestmark = pytest.mark.slow


def _predict(world, out, devices, tmp_path):
    config = tmp_path / f"predict{devices}.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "seed_everything": 0,  # same random weights in every process
                "trainer": {
                    "devices": devices,
                    "strategy": "ddp" if devices > 1 else "auto",
                    "enable_progress_bar": False,
                    "logger": False,
                    "callbacks": [
                        {
                            "class_path": "tessera.apps.segmentation.writer.SegmentationWriter",
                            "init_args": {"output_dir": str(out)},
                        }
                    ],
                },
            }
        )
    )
    argv = [
        sys.executable,
        "-m",
        "tessera.apps.segmentation.cli",
        "predict",
        "-c",
        str(CONFIGS / "semantic-tiny.yaml"),
        "-c",
        str(config),
        f"--data.init_args.data_root={world}",
        "--data.init_args.batch_size=2",
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]


def test_ddp_two_processes_write_the_same_files_as_one(world, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    _predict(world, one, 1, tmp_path)
    _predict(world, two, 2, tmp_path)
    files = sorted(p.name for p in (one / "pred").glob("*.png"))
    assert files == sorted(p.name for p in (two / "pred").glob("*.png")) and len(files) == 4
    for name in files:
        assert (one / "pred" / name).read_bytes() == (two / "pred" / name).read_bytes()
    s1 = json.loads((one / "summary.json").read_text())
    s2 = json.loads((two / "summary.json").read_text())
    assert s1["written"] == s2["written"] == 4
    assert s1["metrics"]["miou"] == pytest.approx(s2["metrics"]["miou"])
