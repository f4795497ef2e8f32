"""The demo page builds without a shipped checkpoint (and says so), and its try-on function
works on the bundled back-view example with a checkpoint trained for one step."""

import json

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from helpers.layouts import tryon as layouts
from tessera.apps.tryon.cli import main
from tessera.demos import tryon as demo

from .conftest import tiny_args


def test_builds_and_runs_the_back_view_example(in_repo, tmp_path):
    page = demo.build_demo()
    assert isinstance(page, gr.Blocks)
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
    demo.build_demo(str(ckpt))
    row = json.loads((demo.EXAMPLES_DIR / "examples.json").read_text())[1]
    assert row["view"] == "back"
    person = np.asarray(Image.open(demo.EXAMPLES_DIR / row["person"]).convert("RGB"))
    mask = np.asarray(Image.open(demo.EXAMPLES_DIR / row["mask"]).convert("L")) > 127
    layer = np.zeros((*mask.shape, 4), np.uint8)
    layer[mask] = (255, 0, 0, 255)
    editor = {"background": person, "layers": [layer], "composite": person}
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
