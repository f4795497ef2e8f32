"""Virtual try-on demo: person (paint the region to replace), front garment, optional back
garment, view → MV-VTON result, with DDIM steps and seed, and a side-by-side view
(input, mask, result).

Bundled examples (``demos/examples/tryon/``, a front-view and a back-view person of the
synthetic world) come from ``python -m tessera.demos.tryon --write-examples WORLD``.
"""

from __future__ import annotations

import argparse
import json
import shutil
from functools import cache
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image

EXAMPLES_DIR = Path(__file__).parent / "examples" / "tryon"
CHECKPOINT = "tryon-mvvton-tiny"
ACTIVE = {"checkpoint": CHECKPOINT}


@cache
def _predictor(name: str):
    from tessera.apps.tryon import load

    return load(name)


def _mask_from_editor(value) -> tuple[Image.Image, Image.Image | None]:
    """(person, painted mask or None) from an ImageEditor value."""
    if value is None or value.get("background") is None:
        raise gr.Error("Upload a person image first.")
    person = Image.fromarray(np.asarray(value["background"])[..., :3].astype(np.uint8))
    painted = None
    for layer in value.get("layers") or []:
        alpha = np.asarray(layer)[..., 3] if np.asarray(layer).ndim == 3 else None
        if alpha is not None and alpha.max() > 0:
            painted = alpha if painted is None else np.maximum(painted, alpha)
    mask = Image.fromarray(((painted > 0) * 255).astype(np.uint8)) if painted is not None else None
    return person, mask


def try_on(editor, mask_file, front, back, view, steps, seed, progress=gr.Progress()):  # noqa: B008
    """Returns (result, side-by-side input | mask | result)."""
    person, mask = _mask_from_editor(editor)
    if mask is None and mask_file is not None:
        mask = Image.open(mask_file)
    if mask is None:
        raise gr.Error("Paint the garment region on the person (or give a mask image).")
    if front is None:
        raise gr.Error("Upload the front garment.")
    try:
        predictor = _predictor(ACTIVE["checkpoint"])
    except (FileNotFoundError, ValueError) as err:
        raise gr.Error(str(err)) from err

    def tick(step, total):
        progress(step / total, desc=f"DDIM step {step}/{total}")

    try:
        result = predictor(
            person,
            Image.open(front),
            Image.open(back) if back else None,
            mask=mask,
            view=view,
            steps=int(steps),
            seed=int(seed),
            progress=tick,
        )
    except ValueError as err:
        raise gr.Error(str(err)) from err
    w, h = result.size
    shown = [person.convert("RGB").resize((w, h)), mask.convert("RGB").resize((w, h)), result]
    side = Image.new("RGB", (3 * w, h))
    for i, image in enumerate(shown):
        side.paste(image, (i * w, 0))
    return result, side


def _examples() -> list[list]:
    path = EXAMPLES_DIR / "examples.json"
    if not path.is_file():
        return []
    rows = json.loads(path.read_text())
    return [
        [
            str(EXAMPLES_DIR / r["person"]),
            str(EXAMPLES_DIR / r["mask"]),
            str(EXAMPLES_DIR / r["front"]),
            str(EXAMPLES_DIR / r["back"]),
            r["view"],
            20,
            23,
        ]
        for r in rows
    ]


def build_demo(checkpoint: str = CHECKPOINT) -> gr.Blocks:
    """The demo page, trying on with ``checkpoint`` (registry name or weight file)."""
    ACTIVE["checkpoint"] = str(checkpoint)
    note = ""
    if checkpoint == CHECKPOINT:
        from tessera.apps.common.checkpoints import registry

        if CHECKPOINT not in registry():
            note = (
                f"\n\n**No checkpoint is shipped yet** (`{CHECKPOINT}`): train one with "
                "`python -m tessera.apps.tryon.recipes all --workdir DIR`, or start the "
                "demo with `python -m tessera.demos.tryon --checkpoint <file>`."
            )
    with gr.Blocks(title="Tessera virtual try-on") as demo:
        gr.Markdown(
            "### Virtual try-on (MV-VTON)\nPaint the region to replace on the person, "
            "give the front garment and, for back views, the back garment." + note
        )
        with gr.Row():
            with gr.Column():
                editor = gr.ImageEditor(
                    label="Person (paint the mask)", type="numpy", elem_id="tryon-person"
                )
                mask_file = gr.Image(label="or a mask image", type="filepath", elem_id="tryon-mask")
                with gr.Row():
                    front = gr.Image(label="Front garment", type="filepath", elem_id="tryon-front")
                    back = gr.Image(
                        label="Back garment (optional)", type="filepath", elem_id="tryon-back"
                    )
                view = gr.Radio(["front", "side", "back"], value="front", label="View")
                steps = gr.Slider(2, 50, value=20, step=1, label="DDIM steps")
                seed = gr.Number(23, precision=0, label="Seed")
                run = gr.Button("Try on", variant="primary", elem_id="tryon-run")
            with gr.Column():
                result = gr.Image(label="Result", elem_id="tryon-result")
                side = gr.Image(label="Input | mask | result", elem_id="tryon-side")
        inputs = [editor, mask_file, front, back, view, steps, seed]
        run.click(try_on, inputs, [result, side], api_name="predict")
        examples = _examples()
        if examples:
            gr.Examples(
                examples, inputs, label="Examples (front and back views)", elem_id="tryon-examples"
            )
    demo.queue(default_concurrency_limit=2)
    return demo


def write_examples(world: str) -> None:
    """Copy a front-view and a back-view test person of a synthetic MVG world."""
    from tessera.datamodules.tryon import list_records

    EXAMPLES_DIR.mkdir(parents=True, exist_ok=True)
    records = list_records(world, "test")
    rows = []
    for r in [next(r for r in records if r.view == 1), next(r for r in records if r.view == 3)]:
        name = r.item_id.split("___")[0]
        files = {
            "person": r.person,
            "mask": r.mask,
            "front": r.garment_front,
            "back": r.garment_back,
        }
        row = {"view": "back" if r.view == 3 else "front"}
        for key, path in files.items():
            target = f"{name}_{key}{path.suffix}"
            shutil.copy(path, EXAMPLES_DIR / target)
            row[key] = target
        rows.append(row)
    (EXAMPLES_DIR / "examples.json").write_text(json.dumps(rows, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tessera.demos.tryon")
    parser.add_argument("--checkpoint", default=CHECKPOINT)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--write-examples", metavar="WORLD", default=None)
    args = parser.parse_args(argv)
    if args.write_examples:
        write_examples(args.write_examples)
        return 0
    build_demo(args.checkpoint).launch(
        server_name=args.host, server_port=args.port, max_file_size="10mb"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
