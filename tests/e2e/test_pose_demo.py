"""Browser test: the pose tab turns a bundled example image into a skeleton overlay and a
joint table, lifts it to a 3-D plot, and lifts the bundled keypoint sequence to an animated
3-D skeleton with an npz; bad input is a message. It uses untrained weights of the tiny
configs saved by the test, so it does not depend on the shipped checkpoints."""

from pathlib import Path

import pytest
import torch
import yaml

from tessera.apps.pose import export
from tessera.apps.pose.module import PoseLifting, TopDownPose
from tessera.demos.pose import EXAMPLES_DIR, build_demo

pytestmark = pytest.mark.e2e

CONFIGS = Path("apps/pose/configs")


def _tiny(cls, config):
    return cls(**yaml.safe_load((CONFIGS / config).read_text())["model"]["init_args"])


@pytest.fixture
def weights(tmp_path, monkeypatch, request):
    monkeypatch.chdir(request.config.rootpath)
    torch.manual_seed(0)
    keypoints = export(_tiny(TopDownPose, "psa-tiny.yaml"), tmp_path / "psa.safetensors")
    lifter = export(_tiny(PoseLifting, "lifter-tiny.yaml"), tmp_path / "lifter.safetensors")
    return str(keypoints), str(lifter)


def test_image_example_renders_overlay_table_and_3d(serve_demo, weights):
    page = serve_demo(build_demo(*weights))
    page.get_by_text("Example images").first.wait_for()
    page.locator("#pose-image input[type=file]").set_input_files(str(EXAMPLES_DIR / "person0.jpg"))
    page.locator("#pose-image img").first.wait_for()
    page.locator("#pose-run").click()
    page.locator("#pose-summary").get_by_text("17 keypoints").first.wait_for()
    assert page.locator("#pose-overlay img").first.get_attribute("src")
    page.locator("#pose-table").get_by_text("left_wrist").first.wait_for()
    page.locator("#pose-lift").click()
    page.locator("#pose-3d .js-plotly-plot").first.wait_for()


def test_keypoint_sequence_lifts_to_animated_3d(serve_demo, weights):
    page = serve_demo(build_demo(*weights))
    page.get_by_role("tab", name="Sequence / video").click()
    sequence = str(EXAMPLES_DIR / "walk_keypoints.npz")
    page.locator("#pose-seq-input input[type=file]").set_input_files(sequence)
    page.locator("#pose-seq-input").get_by_text("walk_keypoints.npz").first.wait_for()
    page.locator("#pose-seq-run").click()
    page.locator("#pose-seq-summary").get_by_text("Lifted 40 frames").first.wait_for()
    page.locator("#pose-seq-3d .js-plotly-plot").first.wait_for()
    page.locator("#pose-seq-npz").get_by_text("walk_keypoints-3d").first.wait_for()


def test_bad_input_is_a_message_not_a_traceback(serve_demo, weights):
    page = serve_demo(build_demo(*weights))
    page.locator("#pose-run").click()
    page.get_by_text("Upload an image of a person").first.wait_for()
    page.locator("#pose-image input[type=file]").set_input_files(str(EXAMPLES_DIR / "person0.jpg"))
    page.locator("#pose-image img").first.wait_for()
    page.locator("#pose-box textarea, #pose-box input").first.fill("10, 10, 0, 20")
    page.locator("#pose-run").click()
    page.get_by_text("has no area").first.wait_for()


def test_page_says_when_no_checkpoint_is_shipped(serve_demo):
    page = serve_demo(build_demo("pose-not-trained", "pose-lifter-not-trained"))
    page.locator("#pose-no-checkpoint").get_by_text("No checkpoint is shipped yet").wait_for()
