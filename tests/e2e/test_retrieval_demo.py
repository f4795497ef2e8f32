"""Browser test: the retrieval tab searches the bundled gallery and renders the top 5 with an
attention chart; an empty query is a message. The test uses a tiny model it exports itself
(untrained: the page, not the ranking, is under test), so it runs before the shipped
checkpoint is trained; the hub test builds the demo with its default checkpoint."""

import pytest
import yaml

from tessera.demos.retrieval import TOP_K, build_demo

pytestmark = pytest.mark.e2e


@pytest.fixture
def checkpoint(tmp_path):
    from pathlib import Path

    import torch

    from tessera.apps.retrieval import export
    from tessera.apps.retrieval.module import RetrievalModule

    config = Path(__file__).parents[2] / "apps/retrieval/configs/tiny.yaml"
    torch.manual_seed(0)
    module = RetrievalModule(**yaml.safe_load(config.read_text())["model"])
    return str(export(module, tmp_path / "tiny.safetensors"))


def test_query_renders_table_results_and_attention(serve_demo, checkpoint):
    page = serve_demo(build_demo(checkpoint))
    page.locator("#ret-gallery img, #ret-gallery video").first.wait_for(state="attached")
    page.locator("#ret-query textarea, #ret-query input").first.fill("a red circle moves left")
    page.locator("#ret-run").click()
    page.locator("#ret-plot img, #ret-plot canvas, #ret-plot svg").first.wait_for(timeout=120_000)
    cells = page.locator("#ret-table").get_by_text("example_video")
    cells.first.wait_for(state="attached")
    assert cells.count() >= TOP_K  # one row per hit (the gallery holds 8 clips)


def test_empty_query_and_no_checkpoint_are_messages(serve_demo):
    page = serve_demo(build_demo(None))
    page.get_by_text("No retrieval checkpoint is available").first.wait_for()
    page.locator("#ret-run").click()
    page.get_by_text("Type a sentence").first.wait_for()


def test_default_demo_searches_with_the_shipped_checkpoint():
    from tessera.apps.common.checkpoints import registry
    from tessera.demos import retrieval as demo

    if demo.CHECKPOINT not in registry():
        pytest.skip(f"{demo.CHECKPOINT} is not registered yet")
    demo.build_demo()
    assert demo.ACTIVE["checkpoint"] == demo.CHECKPOINT
    rows, videos, _ = demo.search("a red circle moves left", progress=lambda *a, **k: None)
    assert len(rows) == len(videos) == TOP_K
    assert [r[0] for r in rows] == list(range(1, TOP_K + 1))
