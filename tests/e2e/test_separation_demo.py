"""Browser test: the separation tab separates a bundled example into audio players, plots it
and scores it against the bundled references."""

import pytest

from tessera.apps.common.checkpoints import registry
from tessera.demos.separation import build_demo

pytestmark = pytest.mark.e2e


def test_example_renders_tracks_plot_and_si_sdri(serve_demo):
    if "separation-mossformer-tiny" not in registry():
        pytest.skip("the separation checkpoint is not registered yet (make checkpoints)")
    page = serve_demo(build_demo())
    page.get_by_text("Examples").first.wait_for()
    page.locator("tr.tr-body, .gallery-item, [data-testid='dataset-cell-0-0']").first.click()
    page.locator("#sep-input audio").first.wait_for(state="attached")  # the example loaded
    page.locator("#sep-run").click()
    page.locator("#sep-metrics").get_by_text("SI-SDRi").wait_for()
    for k in (1, 2):
        page.locator(f"#sep-track{k} audio").first.wait_for(state="attached")
        download = page.locator(f"#sep-track{k} [data-testid='download-link']").first
        assert ".wav" in (download.get_attribute("href") or "")
    page.locator("#sep-plot img, #sep-plot canvas, #sep-plot svg").first.wait_for()


def test_missing_input_is_a_message_not_a_traceback(serve_demo):
    page = serve_demo(build_demo())
    page.locator("#sep-run").click()
    page.get_by_text("Upload or record a mixture first.").first.wait_for()
