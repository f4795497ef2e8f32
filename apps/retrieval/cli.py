"""``tessera retrieval fit|validate|test|predict|synth|evaluate|index|search``.

- ``evaluate --checkpoint C --data DIR [--split test] [--scoring cosine|dual_softmax]``:
  t2v/v2t R@1/5/10, MdR, MnR as the X-Pool/CLIP4Clip evaluation (MSR-VTT ``test`` = 1k-A
  with the JSFUSION sentences, 1000 x 1000; MSVD every test caption), JSON on the last stdout
  line. ``--scoring dual_softmax`` re-scores with the hub-aware dual softmax (not the
  published protocol).
- ``index --videos DIR --out INDEX --checkpoint C``: embed a folder of videos (incremental,
  resumable).
- ``search --index INDEX --checkpoint C "a query" [--top-k 10] [--mode auto|exact|two_stage]
  [--format json|csv]``: ranked videos.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys

import torch

from tessera.apps.common.cli import AppCommands, EvaluateRequest, run_app
from tessera.apps.retrieval.module import RetrievalModule
from tessera.datamodules.retrieval import synth
from tessera.datamodules.retrieval.datamodule import RetrievalDataModule


def evaluate(request: EvaluateRequest, scoring: str | None = None) -> dict[str, float]:
    """Metrics of a checkpoint on ``request.split`` (the same code path as ``test``).

    ``scoring`` (or ``--scoring``, ``request.options["scoring"]``) overrides the checkpoint's
    ``eval_scoring``: ``cosine`` (the published protocol, the default) or ``dual_softmax``."""
    import lightning as L

    from tessera.apps.retrieval import load
    from tessera.apps.retrieval.module import SCORINGS

    scoring = scoring or request.options.get("scoring")
    if scoring is not None and scoring not in SCORINGS:
        raise ValueError(f"scoring must be one of {SCORINGS}, got {scoring!r}")
    retriever = load(request.checkpoint, device=request.device)
    module = retriever.module
    hp = module.hparams
    if scoring is not None:
        hp.eval_scoring = scoring
    data = RetrievalDataModule(
        request.data, test_split=request.split, num_frames=hp.num_frames,
        image_size=module.model.image_size, eval_batch_size=request.batch_size,
        num_workers=request.num_workers, audio=module.model.uses_audio,
        audio_frames=hp.audio_frames, n_mels=hp.n_mels,
    )  # fmt: skip
    trainer = L.Trainer(
        accelerator="cpu" if request.device == "cpu" else "auto", devices=1, logger=False,
        enable_checkpointing=False, enable_model_summary=False, enable_progress_bar=False,
    )  # fmt: skip
    trainer.test(module, datamodule=data, verbose=False)
    metrics = {k.split("/", 1)[1]: float(v) for k, v in trainer.callback_metrics.items()
               if k.startswith("test/")}  # fmt: skip
    metrics["num_videos"] = int(metrics.pop("num_videos"))
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}


def _index(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="tessera retrieval index",
        description="Embed every video under --videos into the index folder --out; videos "
        "already indexed (same file size and mtime) are not embedded again.",
    )
    parser.add_argument("--videos", required=True, help="folder of videos (searched recursively)")
    parser.add_argument("--out", required=True, help="index folder")
    parser.add_argument("--checkpoint", required=True, help="registry name or checkpoint file")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    from tessera.apps.retrieval import load

    try:
        summary = load(args.checkpoint, device=args.device).index(args.videos, args.out)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(summary), flush=True)
    return 0


def _search(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="tessera retrieval search", description="Rank the videos of an index for a sentence."
    )
    parser.add_argument("query", help="the sentence to search for")
    parser.add_argument("--index", required=True, help="index folder (from `index`)")
    parser.add_argument(
        "--checkpoint", required=True, help="the checkpoint the index was built with"
    )
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--mode", default="auto", choices=("auto", "exact", "two_stage"))
    parser.add_argument("--shortlist", type=int, default=100, help="two-stage shortlist size K")
    parser.add_argument("--format", default="json", choices=("json", "csv"))
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    from tessera.apps.retrieval import load

    try:
        retriever = load(args.checkpoint, device=args.device)
        hits = retriever.search(args.query, args.index, args.top_k, args.mode, args.shortlist)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.format == "json":
        print(json.dumps({"query": args.query, "results": hits}), flush=True)
    else:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["rank", "video_id", "path", "score"])
        writer.writerows([[h["rank"], h["video_id"], h["path"], f"{h['score']:.6f}"] for h in hits])
        print(out.getvalue(), end="", flush=True)
    return 0


def _evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scoring", default=None, choices=("cosine", "dual_softmax"),
        help="cosine: the published X-Pool protocol (default); dual_softmax: hub-aware "
        "re-scoring over all queries (Cheng et al., 2021), an option, not the protocol",
    )  # fmt: skip


COMMANDS = AppCommands(
    task="retrieval",
    model_class=RetrievalModule,
    datamodule_class=RetrievalDataModule,
    synth=synth.main,
    evaluate=evaluate,
    evaluate_arguments=_evaluate_arguments,
)

EXTRA_HELP = (
    "  index                             embed a folder of videos into a search index\n"
    "  search                            rank an index's videos for a sentence (json/csv)\n"
)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    torch.set_float32_matmul_precision("high")
    if argv and argv[0] == "index":
        return _index(argv[1:])
    if argv and argv[0] == "search":
        return _search(argv[1:])
    code = run_app(COMMANDS, argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(EXTRA_HELP)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
