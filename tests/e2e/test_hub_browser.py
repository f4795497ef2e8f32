"""The demo hub renders in a real browser."""

import pytest

from tessera.demos.hub import build_hub

pytestmark = pytest.mark.e2e


def test_hub_overview_renders(serve_demo):
    page = serve_demo(build_hub())
    overview = page.locator("#tessera-overview")
    overview.wait_for(state="visible")
    assert "Attention-based task models" in overview.inner_text()
    assert page.get_by_role("tab", name="Overview").count() == 1
