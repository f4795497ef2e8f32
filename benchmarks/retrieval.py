"""Text-video retrieval: query latency vs index size, exact vs two-stage, decoding throughput.

- Query latency (one sentence against stored frame features) for 100 .. 10k videos: exact
  X-Pool scoring of every video against the two-stage search (faiss mean-pooled shortlist of
  K = 100, then X-Pool re-ranking), for the tiny config (C = 64, F = 8) and the paper head
  (C = 512, F = 12; text encoder of ViT-B/32).
- Recall of exact vs two-stage search (K = 10, 20, 50) with the shipped X-Pool checkpoint
  on the 100 test clips of the synthetic world of seed 101 (nobody trained on it), one
  JSFUSION sentence per clip; a clip missing from the shortlist counts as rank N + 1.
- Clip loading throughput (videos/s) of the evaluation dataset, decoding with PyAV every time
  against the warm decoded-frame cache, and the tiny model's index throughput (decode +
  encode).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch
import yaml

from tessera.apps.retrieval.index import IndexData, search_scores
from tessera.apps.retrieval.model import RetrievalModel

CONFIG = Path(__file__).resolve().parents[1] / "apps" / "retrieval" / "configs" / "tiny.yaml"


def _index(n: int, frames: int, dim: int) -> IndexData:
    feats = torch.randn(n, frames, dim)
    unit = torch.nn.functional.normalize(feats, dim=-1)
    mean = torch.nn.functional.normalize(unit.mean(1), dim=-1)
    return IndexData([f"v{i}" for i in range(n)], [""] * n, feats, mean)


def _latency_rows(bench, name: str, model: RetrievalModel, frames: int) -> None:
    sizes = (100, 1000) if bench.quick else (100, 1000, 10000)
    tokens = model.tokenize(["a red circle moves left and later a blue square moves up"])
    for n in sizes:
        data = _index(n, frames, model.dim)

        def query(mode, data=data):
            with torch.no_grad():
                text = model.encode_text(tokens)[0]
                return search_scores(model, text, data, mode, k=100)

        cases = {"exact": lambda: query("exact"), "two-stage K=100": lambda: query("two_stage")}
        bench.compare({"model": name, "videos": n}, cases, baseline="exact")


def _throughput_rows(bench) -> None:
    from tessera.apps.retrieval.module import RetrievalModule
    from tessera.datamodules.common.video import write_video
    from tessera.datamodules.retrieval.cache import FrameCache
    from tessera.datamodules.retrieval.dataset import VideoTextDataset
    from tessera.datamodules.retrieval.layouts import list_videos

    config = yaml.safe_load(CONFIG.read_text())
    count = 8 if bench.quick else 32
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(count):  # 4 s at 25 fps, 320x240, like a compressed MSR-VTT clip
            frames = rng.integers(0, 255, (100, 240, 320, 3), dtype=np.uint8)
            write_video(Path(tmp) / "videos" / f"video{i}.mp4", frames, fps=25)
        items = list_videos(Path(tmp) / "videos")
        plain = VideoTextDataset(items, 8, 32)
        cache = FrameCache(Path(tmp) / "cache", 8, 3, 32)
        cached = VideoTextDataset(items, 8, 32, cache=cache)
        for i in range(count):
            cached[i]  # warm the cache
        module = RetrievalModule(**config["model"]).eval()

        def load_all(dataset):
            return [dataset[i] for i in range(count)]

        def index_all():
            with torch.no_grad():
                for i in range(count):
                    module.encode_videos({"frames": plain[i]["frames"][None]})

        row = bench.compare(
            {"videos": count, "clip": "4 s 320x240 25 fps"},
            {
                "decode (PyAV)": lambda: load_all(plain),
                "frame cache": lambda: load_all(cached),
                "decode + encode (tiny)": index_all,
            },  # fmt: skip
            baseline="decode (PyAV)",
        )
        for case in row.cases:
            if case.median_s:
                bench.note(f"{case.name}: {count / case.median_s:.1f} videos/s (median)")


def _recall_rows(bench, checkpoint: str = "retrieval-xpool-tiny") -> None:
    import csv

    from tessera.apps.common.checkpoints import registry
    from tessera.apps.retrieval import load
    from tessera.apps.retrieval.index import VideoIndex
    from tessera.datamodules.retrieval.synth import write_world

    if checkpoint not in registry():
        bench.note(f"recall rows skipped: {checkpoint} is not registered")
        return
    retriever = load(checkpoint)
    with tempfile.TemporaryDirectory() as tmp:
        world = write_world(Path(tmp) / "world", seed=101, train=0, val=0, test=100)
        retriever.index(world / "videos/all", Path(tmp) / "index")
        data, _ = VideoIndex.load(Path(tmp) / "index")
        with open(world / "MSRVTT_JSFUSION_test.csv", newline="") as f:
            queries = [(r["video_id"], r["sentence"]) for r in csv.DictReader(f)]
    with torch.no_grad():
        texts = retriever.encode_text([q for _, q in queries])
    n = len(data.ids)
    bench.note(f"exact vs two-stage recall ({checkpoint}, seed-101 test clips, {n} videos):")
    bench.note("| search | t2v R@1 | R@5 | R@10 | MdR | MnR |")
    bench.note("|---|---|---|---|---|---|")
    for mode, k in (("exact", n), ("two_stage", 10), ("two_stage", 20), ("two_stage", 50)):
        ranks = []
        for (video_id, _), text in zip(queries, texts, strict=True):
            with torch.no_grad():
                candidates, scores = search_scores(retriever.model, text, data, mode, k)
            order = [data.ids[i] for i in candidates[scores.argsort(descending=True)].tolist()]
            ranks.append(order.index(video_id) + 1 if video_id in order else n + 1)
        r = np.array(ranks)
        name = "exact" if mode == "exact" else f"two-stage K={k}"
        recall = " | ".join(f"{100 * (r <= top).mean():.1f}" for top in (1, 5, 10))
        bench.note(f"| {name} | {recall} | {np.median(r):g} | {r.mean():.2f} |")


def run(bench) -> None:
    torch.manual_seed(0)
    load = Path("/proc/loadavg").read_text().split()[:3]
    bench.note(f"torch threads: {torch.get_num_threads()}; load average at start {' '.join(load)}")
    config = yaml.safe_load(CONFIG.read_text())["model"]
    tiny = RetrievalModel(config["clip"], pooling="xpool").eval()
    _latency_rows(bench, "tiny (C=64, F=8)", tiny, 8)
    paper = RetrievalModel("ViT-B-32", pooling="xpool", quick_gelu=True).eval()
    _latency_rows(bench, "ViT-B/32 head (C=512, F=12)", paper, 12)
    _recall_rows(bench)
    _throughput_rows(bench)
