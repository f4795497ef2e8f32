"""Prediction writer: atomic, resumable, identical outputs on 1 and 2 DDP processes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import toy_task

TOY = Path(toy_task.__file__)


def _outputs(folder: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in folder.glob("item-*.json")}


def test_predict_writes_every_item_and_reports_skipped(tmp_path):
    toy_task.predict_in_processes(tmp_path, devices=1)
    outputs = _outputs(tmp_path)
    assert sorted(outputs) == [f"item-{i:02d}" for i in range(11) if i != 3]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["written"] == 10 and summary["already_done"] == 0
    assert summary["skipped"] == [
        {
            "item_id": "item-03",
            "path": "/data/item-03.bin",
            "reason": "/data/item-03.bin: truncated file (re-export it)",
        }
    ]
    expected = sum(abs(o["pred"] - o["target"]) for o in outputs.values()) / 10
    assert summary["metrics"]["abs_err"] == pytest.approx(expected)
    assert not list(tmp_path.glob(".*tmp*"))


def test_rerun_skips_finished_items(tmp_path):
    toy_task.predict_in_processes(tmp_path, devices=1)
    (tmp_path / "item-05.json").unlink()
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("item-*.json")}
    toy_task.predict_in_processes(tmp_path, devices=1)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["written"] == 1 and summary["already_done"] == 9
    after = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("item-*.json")}
    assert (tmp_path / "item-05.json").exists()
    assert all(after[name] == mtime for name, mtime in before.items())


def test_rerun_with_every_item_finished_still_writes_the_summary(tmp_path):
    # Lightning skips the whole predict loop (and on_predict_end) when there is no batch
    toy_task.predict_in_processes(tmp_path, devices=1, corrupt=())
    (tmp_path / "summary.json").unlink()
    toy_task.predict_in_processes(tmp_path, devices=1, corrupt=())
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["written"] == 0 and summary["already_done"] == 11


@pytest.mark.slow
def test_ddp_two_processes_write_the_same_files_as_one(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    toy_task.predict_in_processes(one, devices=1)
    result = subprocess.run(
        [sys.executable, str(TOY), str(two), "2"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert _outputs(one) == _outputs(two)
    assert sorted(p.name for p in two.glob("summary-rank*.json")) == [
        "summary-rank0.json",
        "summary-rank1.json",
    ]
    s1 = json.loads((one / "summary.json").read_text())
    s2 = json.loads((two / "summary.json").read_text())
    assert s1["written"] == s2["written"] == 10
    assert s1["skipped"] == s2["skipped"]
    assert s1["metrics"] == pytest.approx(s2["metrics"])
