"""The demo's video path without a browser: a short clip of the synthetic world (written with
PyAV) goes through 2-D keypoints per frame and temporal lifting to an animated plotly figure
and an npz; a corrupt or truncated video is a ``gr.Error``. Untrained weights of the tiny
configs stand in for the checkpoints, so the test does not depend on the shipped ones."""

from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch
import yaml

import tessera.apps.pose
from tessera.apps.pose import export
from tessera.apps.pose.module import PoseLifting, TopDownPose
from tessera.datamodules.common.video import read_frames, write_video
from tessera.datamodules.pose.synth import render_clip
from tessera.demos import pose as demo

CONFIGS = Path(tessera.apps.pose.__file__).parent / "configs"
FRAMES, FPS = 8, 10


def _quiet(*args, **kwargs):
    return None


def _tiny(cls, config):
    return cls(**yaml.safe_load((CONFIGS / config).read_text())["model"]["init_args"])


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    keypoints = export(_tiny(TopDownPose, "psa-tiny.yaml"), folder / "psa.safetensors")
    lifter = export(_tiny(PoseLifting, "lifter-tiny.yaml"), folder / "lifter.safetensors")
    return str(keypoints), str(lifter)


@pytest.fixture
def active(weights, monkeypatch, tmp_path):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the demo's npz goes here
    monkeypatch.setitem(demo.ACTIVE, "checkpoint", weights[0])
    monkeypatch.setitem(demo.ACTIVE, "lifter", weights[1])


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    video, _ = render_clip(np.random.default_rng(3), frames=FRAMES, size=(96, 64))
    path = write_video(tmp_path_factory.mktemp("clip") / "walk.mp4", video, fps=FPS)
    return Path(path), video


def test_video_lifts_to_an_animated_figure_and_npz(active, clip):
    path, video = clip
    figure, npz_path, summary = demo.lift_file(str(path), progress=_quiet)
    assert Path(npz_path).name == "walk-3d.npz"
    with np.load(npz_path) as npz:
        kp, joints, fps = npz["keypoints_2d"], npz["joints_3d"], float(npz["fps"])
    assert kp.shape == (FRAMES, 17, 3) and joints.shape == (FRAMES, 17, 3)
    assert fps == pytest.approx(FPS) and np.isfinite(joints).all()
    # the keypoints are the 2-D model's on each decoded frame (whole-frame box), and the 3-D
    # joints the lifter's over the whole clip at the video's size
    frames = read_frames(path, list(range(FRAMES)))
    assert frames.shape == video.shape
    for t in (0, FRAMES - 1):
        expected = demo._load(demo.ACTIVE["checkpoint"])(frames[t]).keypoints[0]
        np.testing.assert_allclose(kp[t], expected, atol=1e-4)
    height, width = video.shape[1:3]
    lifted = demo._load(demo.ACTIVE["lifter"])(kp[..., :2], image_size=(width, height))
    np.testing.assert_allclose(joints, lifted, atol=1e-5)
    assert f"Lifted {FRAMES} frames" in summary and f"{FRAMES} video frames" in summary
    # one animation frame per video frame, each the lifted skeleton of that frame
    assert len(figure.frames) == FRAMES
    for t in (0, FRAMES - 1):
        (trace,) = figure.frames[t].data
        xs = np.array([v for v in trace.x if v is not None], np.float32)
        assert np.isin(xs, joints[t, :, 0]).all() and len(xs) == 2 * 16  # 16 bones
    (menu,) = figure.layout.updatemenus
    assert menu.buttons[0].label == "play"
    assert menu.buttons[0].args[1]["frame"]["duration"] == pytest.approx(1000 / FPS)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_video_is_a_gr_error(active, clip, tmp_path, damage):
    data = clip[0].read_bytes()
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all" * 64 if damage == "garbage" else data[: len(data) // 3])
    with pytest.raises(gr.Error, match="broken.mp4"):
        demo.lift_file(str(bad), progress=_quiet)
