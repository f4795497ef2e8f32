"""Text-video retrieval demo: type a sentence, get the best-matching videos of an index.

A gallery of the indexed videos; a query gives the top 5 with their scores and, for each, the
X-Pool attention weights over its frames as a bar chart; an uploaded video is added to the
index. The index starts from the bundled examples (``demos/examples/retrieval/``, clips of a
fresh synthetic world: ``python -m tessera.demos.retrieval --write-examples``).

It searches with the shipped ``retrieval-xpool-tiny`` (trained on the synthetic world by
``python -m tessera.apps.retrieval.recipes``); ``--checkpoint`` takes another registry name, a
``.safetensors`` from ``tessera.apps.retrieval.export`` or a Lightning ``.ckpt`` of ``tessera
retrieval fit``.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from functools import cache
from pathlib import Path

import gradio as gr

EXAMPLES_DIR = Path(__file__).parent / "examples" / "retrieval"
MAX_UPLOAD_MB = 50
TOP_K = 5
ACTIVE: dict = {"checkpoint": None, "index": None, "videos": None}
CHECKPOINT = "retrieval-xpool-tiny"  # the shipped checkpoint (registry name)


def _available(checkpoint: str | None) -> str | None:
    """``checkpoint`` unless it is a registry name that is not registered (not trained)."""
    from tessera.apps.common.checkpoints import registry

    if checkpoint and not Path(checkpoint).exists() and checkpoint not in registry():
        return None
    return checkpoint


@cache
def _load(checkpoint: str):
    from tessera.apps.retrieval import load

    return load(checkpoint)


def _retriever():
    if not ACTIVE["checkpoint"]:
        raise gr.Error(
            "No retrieval checkpoint is available: train the shipped one with "
            "`python -m tessera.apps.retrieval.recipes` or start the demo with "
            "`python -m tessera.demos.retrieval --checkpoint FILE`."
        )
    try:
        return _load(ACTIVE["checkpoint"])
    except (FileNotFoundError, ValueError) as err:
        raise gr.Error(str(err)) from err


def _ensure_index() -> Path:
    retriever = _retriever()
    if ACTIVE["index"] is None:
        work = Path(tempfile.mkdtemp(prefix="tessera-retrieval-demo-"))
        videos = work / "videos"
        videos.mkdir()
        for clip in sorted(EXAMPLES_DIR.glob("*.mp4")):
            shutil.copyfile(clip, videos / clip.name)
        ACTIVE["videos"], ACTIVE["index"] = videos, work / "index"
    if not (ACTIVE["index"] / "manifest.json").is_file():
        summary = retriever.index(ACTIVE["videos"], ACTIVE["index"])
        if summary["videos"] == 0:
            raise gr.Error("the index is empty; upload a video")
    return ACTIVE["index"]


def _gallery() -> list[str]:
    folder = ACTIVE["videos"] or EXAMPLES_DIR
    return [str(p) for p in sorted(Path(folder).glob("*.mp4"))]


def _attention_figure(hits: list[dict]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(hits), 1, figsize=(6, 1.3 * len(hits)), squeeze=False)
    for ax, hit in zip(axes[:, 0], hits, strict=True):
        weights = hit["frame_attention"]
        ax.bar(range(1, len(weights) + 1), weights, color="tab:blue")
        ax.set_ylim(0, max(weights) * 1.15 + 1e-6)
        ax.set_ylabel(f"#{hit['rank']}", rotation=0, labelpad=14)
        ax.set_title(f"{hit['video_id']}  (score {hit['score']:.3f})", fontsize=8, loc="left")
        ax.tick_params(labelsize=7)
    axes[-1, 0].set_xlabel("frame")
    fig.tight_layout()
    return fig


def search(query: str, progress=gr.Progress()):  # noqa: B008
    """Top-5 videos of the index for ``query``: a table, the videos and an attention chart."""
    if not query or not query.strip():
        raise gr.Error("Type a sentence describing the video you are looking for.")
    progress(0.1, desc="indexing the gallery (first query only)")
    index = _ensure_index()
    progress(0.6, desc="searching")
    try:
        hits = _retriever().search(query, index, top_k=TOP_K)
    except ValueError as err:
        raise gr.Error(str(err)) from err
    rows = [[h["rank"], h["video_id"], round(h["score"], 4)] for h in hits]
    videos = [(h["path"], f"#{h['rank']} {h['video_id']} ({h['score']:.3f})") for h in hits]
    return rows, videos, _attention_figure(hits)


def add_video(path: str | None):
    """Copy an uploaded video into the gallery and index it (unreadable files are refused)."""
    if not path:
        raise gr.Error("Upload a video file first.")
    if Path(path).stat().st_size > MAX_UPLOAD_MB * 2**20:
        raise gr.Error(f"Videos are limited to {MAX_UPLOAD_MB} MB here.")
    _ensure_index()
    from tessera.datamodules.common import DataError
    from tessera.datamodules.common.video import probe

    try:
        probe(path)
    except DataError as err:
        raise gr.Error(f"{Path(path).name}: {err.problem}") from err
    target = ACTIVE["videos"] / Path(path).name
    shutil.copyfile(path, target)
    summary = _retriever().index(ACTIVE["videos"], ACTIVE["index"])
    return _gallery(), f"Indexed {target.name}: the index holds {summary['videos']} videos."


def build_demo(checkpoint: str | None = CHECKPOINT) -> gr.Blocks:
    """The demo page, searching with ``checkpoint`` (registry name or weight file)."""
    checkpoint = _available(checkpoint)
    ACTIVE.update(checkpoint=checkpoint, index=None, videos=None)
    with gr.Blocks(title="Tessera text-video retrieval") as demo:
        gr.Markdown(
            "### Text-video retrieval\nX-Pool: the sentence attends over each video's frames "
            "(CLIP features), so a caption that describes only part of a clip finds it. "
            + (f"Model: `{Path(checkpoint).name}`." if checkpoint else
               "**No retrieval checkpoint is available**: train the shipped one with "
               "`python -m tessera.apps.retrieval.recipes`, or run `python -m "
               "tessera.demos.retrieval --checkpoint FILE` with a model from `tessera "
               "retrieval fit` (see docs/apps/retrieval.md).")
        )  # fmt: skip
        gallery = gr.Gallery(value=_gallery(), label="Indexed videos", columns=6, height=220,
                             elem_id="ret-gallery")  # fmt: skip
        with gr.Row():
            query = gr.Textbox(label="Query", placeholder="a red circle moves left",
                               elem_id="ret-query", scale=4)  # fmt: skip
            run = gr.Button("Search", variant="primary", elem_id="ret-run", scale=1)
        table = gr.Dataframe(headers=["rank", "video", "score"], label="Top 5",
                             elem_id="ret-table", interactive=False)  # fmt: skip
        results = gr.Gallery(label="Results", columns=5, height=200, elem_id="ret-results")
        plot = gr.Plot(label="X-Pool attention over frames", elem_id="ret-plot")
        with gr.Row():
            upload = gr.File(label="Add a video to the index", file_types=["video"],
                             elem_id="ret-upload")  # fmt: skip
            added = gr.Markdown(elem_id="ret-added")
        examples = [
            "a red circle moves left",
            "a blue square moves up and later a green triangle moves down",
        ]
        gr.Examples([[e] for e in examples], inputs=[query], label="Examples")
        run.click(search, [query], [table, results, plot], api_name="search")
        query.submit(search, [query], [table, results, plot])
        upload.upload(add_video, [upload], [gallery, added], api_name="add_video")
    demo.queue(default_concurrency_limit=1)
    return demo


def write_examples(out: Path = EXAMPLES_DIR, seed: int = 123, count: int = 8) -> None:
    """Test clips of a fresh synthetic world as the bundled gallery."""
    from tessera.datamodules.retrieval.synth import write_world

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        world = write_world(Path(tmp), seed=seed, train=0, val=0, test=count)
        for clip in sorted((world / "videos/all").glob("*.mp4")):
            shutil.copyfile(clip, out / f"example_{clip.name}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m tessera.demos.retrieval")
    parser.add_argument("--write-examples", action="store_true")
    parser.add_argument("--checkpoint", default=CHECKPOINT,
                        help="registry name or weight file (.safetensors / .ckpt)")  # fmt: skip
    args = parser.parse_args()
    if args.write_examples:
        write_examples()
    else:
        from tessera.demos.hub import launch

        launch(build_demo(args.checkpoint))
