"""Browser test: the segmentation tab runs bundled examples and renders overlay, table, gates."""

import pytest

from tessera.apps.common.checkpoints import registry
from tessera.demos.segmentation import build_demo

pytestmark = pytest.mark.e2e


def _pick_example(page, row: int) -> None:
    page.locator("#seg-examples tbody tr").nth(row).click()
    page.locator("#seg-image img").first.wait_for()


@pytest.mark.parametrize(("row", "mode"), [(0, "grounding"), (1, "semantic")])
def test_example_renders_overlay_and_area_table(serve_demo, row, mode):
    if f"segmentation-{mode}-tiny" not in registry():
        pytest.skip(f"segmentation-{mode}-tiny is not registered (make checkpoints)")
    page = serve_demo(build_demo())
    _pick_example(page, row)
    page.locator("#seg-run").click()
    overlay = page.locator("#seg-overlay img").first
    overlay.wait_for()
    assert overlay.get_attribute("src")
    names = ["background", "target"] if mode == "grounding" else ["circle", "square", "triangle"]
    for name in names:  # one table row per class
        page.locator(f"#seg-areas :text-is('{name}') >> visible=true").first.wait_for()
    if mode == "grounding":
        page.locator("#seg-gates img, #seg-gates svg, #seg-gates canvas").first.wait_for()


def test_empty_question_is_a_message_not_a_traceback(serve_demo):
    page = serve_demo(build_demo())
    _pick_example(page, 0)
    page.get_by_label("Question (grounding)").fill("")
    page.locator("#seg-run").click()
    page.get_by_text("Grounding mode needs a question").first.wait_for()
