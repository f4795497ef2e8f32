"""The demo page opens on the shipped checkpoint and tries on the bundled back-view example
with it; with another checkpoint (here one trained for one step) the try-on function works the
same, and bad input raises ``gr.Error``."""

import json

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from helpers.layouts import tryon as layouts
from tessera.apps.tryon.cli import main
from tessera.demos import tryon as demo

from .conftest import tiny_args


def back_view_example() -> tuple[dict, dict]:
    """(ImageEditor value with the example's mask painted, example row) of the back view."""
    row = json.loads((demo.EXAMPLES_DIR / "examples.json").read_text())[1]
    assert row["view"] == "back"
    person = np.asarray(Image.open(demo.EXAMPLES_DIR / row["person"]).convert("RGB"))
    mask = np.asarray(Image.open(demo.EXAMPLES_DIR / row["mask"]).convert("L")) > 127
    layer = np.zeros((*mask.shape, 4), np.uint8)
    layer[mask] = (255, 0, 0, 255)
    return {"background": person, "layers": [layer], "composite": person}, row


def test_default_demo_uses_the_shipped_checkpoint(in_repo):
    from tessera.apps.common.checkpoints import registry

    assert demo.CHECKPOINT in registry(), "the demo's default checkpoint must be shipped"
    page = demo.build_demo()
    notes = [b.value for b in page.blocks.values() if isinstance(b, gr.Markdown)]
    assert notes and not any("No checkpoint is shipped" in n for n in notes)
    predictor = demo._predictor(demo.CHECKPOINT)
    assert predictor.module.hparams.method == "diffusion" and predictor.size == (128, 96)
    editor, row = back_view_example()
    front, back = (str(demo.EXAMPLES_DIR / row[k]) for k in ("front", "back"))
    result, side = demo.try_on(
        editor, None, front, back, "back", 5, 23, progress=lambda *a, **k: None
    )
    assert result.size == (96, 128) and side.size == (288, 128)


def test_builds_and_runs_the_back_view_example(in_repo, tmp_path):
    data = layouts.write_mvg(tmp_path / "mvg", n_train=1, n_test=1)
    main(
        [
            "fit",
            *tiny_args(data, tmp_path / "run"),
            "--trainer.max_steps=1",
            "--data.val_split=test",
            "--trainer.limit_val_batches=1",
            "--trainer.check_val_every_n_epoch=1",
        ]
    )
    (ckpt,) = (tmp_path / "run").rglob("*.ckpt")
    assert isinstance(demo.build_demo(str(ckpt)), gr.Blocks)
    editor, row = back_view_example()
    person = editor["background"]
    result, side = demo.try_on(
        editor,
        None,
        str(demo.EXAMPLES_DIR / row["front"]),
        str(demo.EXAMPLES_DIR / row["back"]),
        "back",
        2,
        1,
        progress=lambda *a, **k: None,
    )
    assert result.size == (24, 32) and side.size == (72, 32)
    with pytest.raises(gr.Error, match="Paint the garment region"):
        demo.try_on(
            {"background": person, "layers": []},
            None,
            "x.jpg",
            None,
            "front",
            2,
            1,
            progress=lambda *a, **k: None,
        )
