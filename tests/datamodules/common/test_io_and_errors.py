"""Atomic writes and the on_error policy."""

import pytest
import torch

from tessera.datamodules.common import (
    DataError,
    SkippedItem,
    atomic_write,
    atomic_write_text,
    collate_skipping,
    is_empty_batch,
    load_item,
)


def test_atomic_write_replaces_only_on_success(tmp_path):
    target = tmp_path / "out" / "a.txt"
    atomic_write_text(target, "first")
    with pytest.raises(RuntimeError), atomic_write(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "first"
    assert [p.name for p in target.parent.iterdir()] == ["a.txt"]  # no temp file left
    assert target.stat().st_mode & 0o777 == 0o644


def test_atomic_write_keeps_the_suffix_for_format_sniffing_writers(tmp_path):
    with atomic_write(tmp_path / "x.wav") as tmp:
        assert tmp.suffix == ".wav" and tmp.parent == tmp_path
        tmp.write_bytes(b"RIFF")
    assert (tmp_path / "x.wav").read_bytes() == b"RIFF"


def test_data_error_names_file_problem_and_fix():
    err = DataError("/d/x.wav", "sample rate 16000 Hz, expected 8000 Hz", "resample or set sr")
    assert str(err) == "/d/x.wav: sample rate 16000 Hz, expected 8000 Hz (resample or set sr)"


def _bad():
    raise DataError("/d/b.png", "not a PNG")


def test_load_item_raises_or_skips():
    with pytest.raises(DataError, match="not a PNG"):
        load_item("b", "/d/b.png", _bad, "raise")
    skipped = load_item("b", "/d/b.png", _bad, "skip")
    assert skipped == SkippedItem("b", "/d/b.png", "/d/b.png: not a PNG")
    with pytest.raises(ValueError, match="on_error"):
        load_item("b", "/d/b.png", _bad, "ignore")


def test_collate_skipping_reports_skipped_items():
    collate = collate_skipping()
    ok = {"x": torch.ones(2)}
    batch = collate([ok, SkippedItem("b", "/d/b", "bad"), ok])
    assert batch["x"].shape == (2, 2)
    assert batch["skipped"] == [{"item_id": "b", "path": "/d/b", "reason": "bad"}]
    empty = collate([SkippedItem("b", "/d/b", "bad")])
    assert is_empty_batch(empty) and not is_empty_batch(batch)
