"""fit / evaluate / test / predict / index / search on every real layout, and bad input."""

import csv
import io
import json
import warnings
from pathlib import Path

import pytest
import torch

from tessera.apps.retrieval import load
from tessera.apps.retrieval.cli import main

from .conftest import as_lightning_ckpt

TINY = Path(__file__).parents[3] / "apps/retrieval/configs/tiny.yaml"


def _fit(data_dir: Path, out: Path, *extra: str) -> Path:
    code = main([
        "fit", "-c", str(TINY), f"--data.data_dir={data_dir}", "--data.num_frames=4",
        "--model.num_frames=4", "--data.batch_size=2", "--data.eval_batch_size=8",
        "--trainer.max_steps=2", "--trainer.enable_progress_bar=false", "--trainer.logger=false",
        f"--trainer.default_root_dir={out}", "--trainer.enable_model_summary=false", *extra,
    ])  # fmt: skip
    assert code == 0
    (ckpt,) = out.rglob("*.ckpt")
    return ckpt


def _last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


KEYS = {f"{d}_{m}" for d in ("t2v", "v2t") for m in ("r1", "r5", "r10", "mdr", "mnr")}


@pytest.mark.parametrize(
    "layout,val_split", [("msrvtt", "val"), ("msvd", "val"), ("generic", "val")]
)
def test_fit_evaluate_test_on_real_layouts(datasets, tmp_path, capsys, layout, val_split):
    ckpt = _fit(datasets[layout], tmp_path / "run", f"--data.val_split={val_split}")
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(ckpt), "--data", str(datasets[layout])]) == 0
    metrics = _last_json(capsys)
    assert metrics.keys() >= KEYS
    num_test = {"msrvtt": 3, "msvd": 3, "generic": 2}[layout]
    assert metrics["num_videos"] == num_test
    # evaluate and test give the same numbers on the same data
    retriever = load(ckpt)
    import lightning as L

    from tessera.datamodules.retrieval import RetrievalDataModule

    data = RetrievalDataModule(str(datasets[layout]), num_frames=4, image_size=32)
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    (tested,) = trainer.test(retriever.module, datamodule=data, verbose=False)
    for key in KEYS:
        assert tested[f"test/{key}"] == pytest.approx(metrics[key], abs=1e-3)


def test_msrvtt_evaluate_uses_jsfusion_sentences(datasets, tiny_checkpoint, capsys):
    assert main(["evaluate", "--checkpoint", str(tiny_checkpoint), "--data",
                 str(datasets["msrvtt"]), "--split", "test_full"]) == 0  # fmt: skip
    full = _last_json(capsys)
    assert full["num_videos"] == 3
    from tessera.apps.common.cli import EvaluateRequest
    from tessera.apps.retrieval.cli import evaluate

    request = EvaluateRequest(str(tiny_checkpoint), str(datasets["msrvtt"]), "test_full")
    assert evaluate(request, scoring="cosine")["t2v_r1"] == full["t2v_r1"]  # the default
    dsl = evaluate(request, scoring="dual_softmax")
    assert dsl["num_videos"] == 3 and 0 <= dsl["t2v_r1"] <= 100 and dsl.keys() == full.keys()
    assert main(["evaluate", "--checkpoint", str(tiny_checkpoint), "--data",
                 str(datasets["msrvtt"]), "--split", "test_full", "--scoring",
                 "dual_softmax"]) == 0  # fmt: skip
    assert _last_json(capsys) == dsl
    with pytest.raises(ValueError, match="scoring must be one of"):
        evaluate(request, scoring="softmax")
    assert main(["evaluate", "--checkpoint", str(tiny_checkpoint), "--data", "/nonexistent"]) == 2
    assert "dataset folder does not exist" in capsys.readouterr().err


def test_predict_writes_an_index_and_resumes(datasets, tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "features"
    args = [
        "predict", "-c", str(TINY), f"--data.data_dir={datasets['msvd']}",
        "--trainer.enable_progress_bar=false", "--trainer.logger=false",
        "--trainer.callbacks+=tessera.apps.retrieval.writer.FeatureWriter",
        f"--trainer.callbacks.output_dir={out}",
        f"--ckpt_path={as_lightning_ckpt(tiny_checkpoint, tmp_path)}",
    ]  # fmt: skip
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["written"] == 3 and summary["skipped"] == []
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["num_videos"] == 3 and manifest["frames_shape"] == [8, 64]
    stamps = {p: p.stat().st_mtime_ns for p in (out / "items").iterdir()}
    assert len(stamps) == 3
    assert main(args) == 0  # re-run: nothing left to embed, nothing rewritten
    assert {p: p.stat().st_mtime_ns for p in (out / "items").iterdir()} == stamps


def test_index_is_incremental_and_search_ranks(datasets, tiny_checkpoint, tmp_path, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    source = sorted((datasets["msrvtt"] / "videos/all").glob("*.mp4"))
    for p in source[:5]:
        (videos / p.name).write_bytes(p.read_bytes())
    (videos / "broken.mp4").write_bytes(b"\x00" * 300)  # corrupt: skipped and listed
    index = tmp_path / "index"
    base = ["--checkpoint", str(tiny_checkpoint)]
    assert main(["index", "--videos", str(videos), "--out", str(index), *base]) == 0
    first = _last_json(capsys)
    assert first["embedded"] == 5 and first["videos"] == 5
    assert [s["item_id"] for s in first["skipped"]] == ["broken"]
    for p in source[5:]:
        (videos / p.name).write_bytes(p.read_bytes())
    assert main(["index", "--videos", str(videos), "--out", str(index), *base]) == 0
    second = _last_json(capsys)
    assert second["embedded"] == 3 and second["already_indexed"] == 5 and second["videos"] == 8

    query = ["search", "a red square moves right", "--index", str(index), *base, "--top-k", "4"]
    assert main([*query, "--mode", "exact"]) == 0
    hits = _last_json(capsys)["results"]
    assert [h["rank"] for h in hits] == [1, 2, 3, 4]
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert all(len(h["frame_attention"]) == 8 for h in hits)
    assert sum(hits[0]["frame_attention"]) == pytest.approx(1.0, abs=1e-4)
    # a two-stage search whose shortlist covers the index ranks exactly as exact search
    assert main([*query, "--mode", "two_stage", "--shortlist", "8", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    exact = {h["video_id"]: h["score"] for h in hits}
    assert [float(r["score"]) for r in rows] == pytest.approx(list(exact.values()), abs=1e-5)
    assert all(float(r["score"]) == pytest.approx(exact[r["video_id"]], abs=1e-5) for r in rows
               if r["video_id"] in exact)  # fmt: skip
    assert main(["search", "", "--index", str(index), *base]) == 2
    assert "empty" in capsys.readouterr().err


def test_single_item_api_and_bad_queries(datasets, tiny_checkpoint):
    retriever = load(tiny_checkpoint)
    videos = sorted((datasets["msrvtt"] / "videos/all").glob("*.mp4"))[:3]
    ranked = retriever("a green box slides across", videos)
    assert sorted(r["video"] for r in ranked) == sorted(str(v) for v in videos)
    with pytest.raises(ValueError, match="empty"):
        retriever.encode_text("   ")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        emb = retriever.encode_text("a red square " * 40)
    assert emb.shape == (1, 64) and torch.isfinite(emb).all()
    assert any("truncated" in str(w.message) for w in caught)
