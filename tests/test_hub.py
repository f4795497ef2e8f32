"""The hub shows an overview plus one tab per registered app demo."""

import gradio as gr

from tessera.apps.registry import AppSpec
from tessera.demos import hub


def _tab_labels(blocks: gr.Blocks) -> list[str]:
    return [b.label for b in blocks.blocks.values() if isinstance(b, gr.Tab)]


def test_hub_without_apps_has_an_overview(monkeypatch):
    monkeypatch.setattr(hub, "list_apps", lambda: [])
    demo = hub.build_hub()
    assert _tab_labels(demo) == ["Overview"]
    assert "No task apps are registered yet" in hub._overview_markdown()


def test_hub_mounts_each_app_demo_as_a_tab(monkeypatch):
    spec = AppSpec("toy", "Toy task", "toy summary", cli="x:y", demo="helpers.fake_app:build_demo")
    monkeypatch.setattr(hub, "list_apps", lambda: [spec])
    demo = hub.build_hub()
    assert _tab_labels(demo) == ["Overview", "Toy task"]
    assert "toy summary" in hub._overview_markdown()
