"""The recipe edits only its own registry entry."""

import yaml

from tessera.apps.segmentation import recipes

HEADER = "# comment kept\ncheckpoints: {}\n"


def test_update_registry_adds_and_replaces_only_its_entry(tmp_path, monkeypatch):
    monkeypatch.setattr(recipes, "checkpoints_dir", lambda: tmp_path)
    (tmp_path / "registry.yaml").write_text(HEADER)
    recipes.update_registry("seg-a", {"task": "segmentation", "metrics": {"miou": 0.5}})
    text = (tmp_path / "registry.yaml").read_text()
    text += "  other-b:\n    task: other\n    metrics: {x: 1}\n"
    (tmp_path / "registry.yaml").write_text(text)
    recipes.update_registry("seg-a", {"task": "segmentation", "metrics": {"miou": 0.9}})
    final = (tmp_path / "registry.yaml").read_text()
    assert final.startswith("# comment kept\n")
    parsed = yaml.safe_load(final)["checkpoints"]
    assert parsed == {
        "seg-a": {"task": "segmentation", "metrics": {"miou": 0.9}},
        "other-b": {"task": "other", "metrics": {"x": 1}},
    }
