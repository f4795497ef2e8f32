"""Browser test: the detection3d tab turns an uploaded bundled example into a BEV image, a
plotly 3-D view and a detection table, with the shipped checkpoint by default (or, before
one is registered, an untrained one the test saves)."""

from pathlib import Path

import pytest
import yaml

from tessera.apps.common.checkpoints import registry
from tessera.apps.detection3d import save
from tessera.apps.detection3d.module import Detection3DModule
from tessera.demos.detection3d import CHECKPOINT, EXAMPLES_DIR, build_demo

pytestmark = pytest.mark.e2e


@pytest.fixture
def checkpoint(tmp_path) -> Path | str:
    if CHECKPOINT in registry():
        return CHECKPOINT
    cfg = yaml.safe_load(Path("apps/detection3d/configs/tiny.yaml").read_text())["model"]
    return save(tmp_path / "tiny.safetensors", Detection3DModule(**cfg))


def test_example_renders_bev_3d_view_and_table(serve_demo, checkpoint):
    page = serve_demo(build_demo(str(checkpoint)))
    page.get_by_text("Examples").first.wait_for()
    page.locator("#det-input input[type=file]").set_input_files(str(EXAMPLES_DIR / "example0.bin"))
    page.locator("#det-input").get_by_text("example0.bin").first.wait_for()
    page.locator("#det-run").click()
    page.locator("#det-summary").get_by_text("detections").first.wait_for()
    page.locator("#det-summary").get_by_text("Ground truth (green)").first.wait_for()
    src = page.locator("#det-bev img").first.get_attribute("src")
    assert src
    page.locator("#det-3d .js-plotly-plot, #det-3d canvas, #det-3d svg").first.wait_for()


def test_missing_input_is_a_message_not_a_traceback(serve_demo, checkpoint):
    page = serve_demo(build_demo(str(checkpoint)))
    page.locator("#det-run").click()
    page.get_by_text("Upload a .bin, .npy or .pcd point cloud").first.wait_for()


def test_page_says_when_no_checkpoint_is_shipped(serve_demo):
    page = serve_demo(build_demo("detection3d-not-trained"))
    page.locator("#det-no-checkpoint").get_by_text("No checkpoint is shipped yet").wait_for()


def test_default_page_uses_the_shipped_checkpoint(serve_demo):
    if CHECKPOINT not in registry():
        pytest.skip(f"{CHECKPOINT} is not registered")
    page = serve_demo(build_demo())
    page.locator("#det-input input[type=file]").set_input_files(str(EXAMPLES_DIR / "example0.bin"))
    page.locator("#det-input").get_by_text("example0.bin").first.wait_for()
    page.locator("#det-run").click()
    page.locator("#det-summary").get_by_text("Ground truth (green)").first.wait_for()
    page.locator("#det-table").get_by_text("Car").first.wait_for()  # it finds the example's cars
    assert page.locator("#det-no-checkpoint").count() == 0
