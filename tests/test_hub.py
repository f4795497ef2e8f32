"""The hub shows an overview plus one tab per registered app demo."""

import dataclasses

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


def _layout_ids(node: dict) -> list[int]:
    return [node["id"]] + [i for child in node.get("children", []) for i in _layout_ids(child)]


def test_each_app_demo_is_rendered_once(monkeypatch):
    spec = AppSpec("toy", "Toy task", "toy summary", cli="x:y", demo="helpers.fake_app:build_demo")
    other = dataclasses.replace(spec, name="toy2", title="Toy 2")
    monkeypatch.setattr(hub, "list_apps", lambda: [spec, other])
    config = hub.build_hub().get_config_file()
    components = config["components"]
    fake = [c["id"] for c in components if c.get("props", {}).get("elem_id") == "fake-app"]
    placed = _layout_ids(config["layout"])
    assert len(fake) == 2  # one per tab
    assert all(placed.count(i) == 1 for i in fake)  # and each placed once in the page
