"""Segmentation demo: semantic classes, or the region a question points at.

Upload an image (and, in grounding mode, ask about it) -> coloured overlay with an opacity
slider and a per-class area table; in grounding mode also the Sentence Attention Block
gates: which channels of each backbone scale the question switched on.

Bundled examples (``demos/examples/segmentation/``) come from the synthetic world:
``python -m tessera.demos.segmentation --write-examples``.
"""

from __future__ import annotations

import argparse
import json
from functools import cache
from pathlib import Path

import gradio as gr
import numpy as np

EXAMPLES_DIR = Path(__file__).parent / "examples" / "segmentation"
CHECKPOINTS = {"Semantic": "segmentation-semantic-tiny", "Grounding": "segmentation-grounding-tiny"}
MAX_SIDE = 1024


@cache
def _predictor(name: str):
    from tessera.apps.segmentation import load

    return load(name)


def _examples() -> list[list]:
    path = EXAMPLES_DIR / "examples.json"
    if not path.is_file():
        return []
    rows = json.loads(path.read_text())
    return [[str(EXAMPLES_DIR / r["image"]), r["mode"], r.get("question", "")] for r in rows]


def _gates_figure(gates: list[np.ndarray]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(gates), 1, figsize=(6, 1.1 * len(gates) + 0.6), squeeze=False)
    for s, (ax, g) in enumerate(zip(axes[:, 0], gates, strict=True)):
        ax.bar(np.arange(len(g)), g * len(g), color="tab:orange")
        ax.axhline(1.0, color="gray", lw=0.6)
        ax.set_ylabel(f"scale {s}", rotation=0, ha="right", fontsize=8)
        ax.set_xticks([])
    axes[0, 0].set_title("Sentence attention gates (x channels; 1 = uniform)", fontsize=9)
    axes[-1, 0].set_xlabel("channel")
    fig.tight_layout()
    return fig


def segment(image, mode: str, question: str, opacity: float, progress=gr.Progress()):  # noqa: B008
    """Run the checkpoint of ``mode``; returns overlay, area table, gates plot, state."""
    if image is None:
        raise gr.Error("Upload an image first.")
    image = np.asarray(image)
    if image.ndim not in (2, 3) or max(image.shape[:2]) > MAX_SIDE:
        raise gr.Error(f"Images up to {MAX_SIDE} px per side, please.")
    if mode == "Grounding" and not (question or "").strip():
        raise gr.Error("Grounding mode needs a question, e.g. 'where is the small red circle?'")
    progress(0.2, desc="loading the checkpoint")
    try:
        predictor = _predictor(CHECKPOINTS[mode])
    except (FileNotFoundError, ValueError) as err:
        raise gr.Error(f"Checkpoint unavailable: {err}") from err
    progress(0.6, desc="segmenting")
    try:
        result = predictor(image, question if mode == "Grounding" else None)
    except ValueError as err:
        raise gr.Error(str(err)) from err
    table = [[name, round(100 * frac, 2)] for name, frac in result.areas().items()]
    figure = _gates_figure(result.gates) if result.gates else None
    return (
        result.overlay(opacity),
        table,
        gr.update(value=figure, visible=bool(result.gates)),
        result,
    )


def reblend(result, opacity: float):
    return None if result is None else result.overlay(opacity)


def build_demo() -> gr.Blocks:
    with gr.Blocks(title="Tessera segmentation") as demo:
        gr.Markdown(
            "### Segmentation\nSemantic mode colours every shape by kind (axial + polarized "
            "attention decoder). Grounding mode segments what the question refers to "
            "(Sentence Attention Blocks), or nothing if it is not there."
        )
        result = gr.State(None)
        with gr.Row():
            with gr.Column():
                image = gr.Image(label="Image", type="numpy", elem_id="seg-image")
                mode = gr.Radio(list(CHECKPOINTS), value="Grounding", label="Mode")
                question = gr.Textbox(
                    label="Question (grounding)", value="where is the small red circle?"
                )
                run = gr.Button("Segment", variant="primary", elem_id="seg-run")
            with gr.Column():
                out = gr.Image(label="Overlay", type="numpy", elem_id="seg-overlay")
                opacity = gr.Slider(0.0, 1.0, value=0.6, step=0.05, label="Overlay opacity")
                table = gr.Dataframe(
                    headers=["class", "area %"], label="Area per class", elem_id="seg-areas"
                )
                gates = gr.Plot(
                    label="Sentence attention gates", visible=False, elem_id="seg-gates"
                )
        examples = _examples()
        if examples:
            gr.Examples(
                examples, inputs=[image, mode, question], label="Examples", elem_id="seg-examples"
            )
        run.click(
            segment,
            [image, mode, question, opacity],
            [out, table, gates, result],
            api_name="segment",
        )
        opacity.change(reblend, [result, opacity], out, api_visibility="private")
    return demo


def write_examples(out: Path = EXAMPLES_DIR, seed: int = 123) -> None:
    """Bundle a few scenes of a fresh synthetic world (and questions about them)."""
    import shutil
    import tempfile

    from tessera.datamodules.segmentation.synth import generate

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        world = generate(Path(tmp), seed, {"train": 0, "val": 0, "test": 3}, progress=False)
        questions = json.loads((world / "grounding" / "test_grounding.json").read_text())
        rows = []
        for i, (name, record) in enumerate(sorted(questions.items())):
            shutil.copyfile(world / "img_dir" / "test" / name, out / f"scene{i}.png")
            rows.append(
                {"image": f"scene{i}.png", "mode": "Grounding", "question": record["question"]}
            )
            rows.append({"image": f"scene{i}.png", "mode": "Semantic", "question": ""})
    (out / "examples.json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m tessera.demos.segmentation")
    parser.add_argument("--write-examples", action="store_true")
    if parser.parse_args().write_examples:
        write_examples()
    else:
        from tessera.demos.hub import launch

        launch(build_demo())
