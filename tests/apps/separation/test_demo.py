"""Demo callback without a browser: outputs, metrics text, user errors as gr.Error."""

import gradio as gr
import numpy as np
import pytest
import soundfile as sf

from tessera.apps.separation.inference import Separator
from tessera.apps.separation.model import MossFormer
from tessera.demos import separation as demo


@pytest.fixture
def tiny_separator(monkeypatch):
    model = MossFormer(encoder_dim=16, channels=16, num_blocks=1, query_key_dim=16).eval()
    separator = Separator(model, 8000, 2, chunk_seconds=1.0, overlap_seconds=0.25)
    monkeypatch.setattr(demo, "_separator", lambda: separator)
    return separator


def test_bundled_examples_have_two_references_each():
    examples = demo._examples()
    assert examples and all(len(refs) == 2 for _, refs in examples)


def test_separate_example_with_references(tiny_separator):
    mix, refs = demo._examples()[0]
    *players, figure, text = demo.separate(mix, refs, progress=lambda *a, **k: None)
    assert players[0]["visible"] and players[1]["visible"] and not players[2]["visible"]
    rate, track = players[0]["value"]
    assert rate == 8000 and track.shape == sf.read(mix)[0].shape
    assert "SI-SDRi" in text and len(figure.axes) == 6


@pytest.mark.parametrize(
    "setup, message",
    [("none", "Upload or record"), ("garbage", "Cannot use this audio"),
     ("one_ref", "Give 2 reference files")],
)  # fmt: skip
def test_user_errors_are_messages(tiny_separator, tmp_path, setup, message):
    path, refs = str(tmp_path / "a.wav"), None
    sf.write(path, np.random.default_rng(0).standard_normal(4000) * 0.1, 8000)
    if setup == "none":
        path = None
    elif setup == "garbage":
        (tmp_path / "a.wav").write_bytes(b"nope")
    else:
        refs = [path]
    with pytest.raises(gr.Error, match=message):
        demo.separate(path, refs, progress=lambda *a, **k: None)


def test_silence_gives_silent_tracks_and_says_so(tiny_separator, tmp_path):
    sf.write(tmp_path / "s.wav", np.zeros(4000), 8000)
    with pytest.warns(UserWarning, match="silent"):
        *players, _, text = demo.separate(str(tmp_path / "s.wav"), None, lambda *a, **k: None)
    assert "silent" in text and not players[0]["value"][1].any()
