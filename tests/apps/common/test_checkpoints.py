"""Checkpoint registry resolution and safe loading."""

import pytest
import torch
import yaml
from safetensors.torch import save_file

from tessera.apps.common import checkpoints as ckpt


@pytest.fixture
def fake_registry(tmp_path, monkeypatch):
    weights = {"w": torch.arange(4.0)}
    save_file(weights, str(tmp_path / "toy-tiny.safetensors"))
    entry = {
        "task": "toy",
        "config": "apps/toy/configs/tiny.yaml",
        "file": "toy-tiny.safetensors",
        "sha256": ckpt.sha256_of(tmp_path / "toy-tiny.safetensors"),
        "command": "tessera toy fit -c apps/toy/configs/tiny.yaml",
        "data": {"seed": 0},
        "metrics": {"acc": 0.9},
    }
    (tmp_path / "registry.yaml").write_text(yaml.safe_dump({"checkpoints": {"toy-tiny": entry}}))
    monkeypatch.setattr(ckpt, "checkpoints_dir", lambda: tmp_path)
    return tmp_path


def test_shipped_registry_parses():
    assert isinstance(ckpt.registry(), dict)


def test_resolve_by_name_checks_hash_and_task(fake_registry):
    path, entry = ckpt.resolve("toy-tiny", task="toy")
    assert entry.metrics == {"acc": 0.9}
    assert torch.equal(ckpt.load_state_dict(path)["w"], torch.arange(4.0))
    with pytest.raises(ValueError, match="for task 'toy', not 'pose'"):
        ckpt.resolve("toy-tiny", task="pose")
    (fake_registry / "toy-tiny.safetensors").write_bytes(b"corrupted")
    with pytest.raises(ValueError, match="does not match the registry"):
        ckpt.resolve("toy-tiny", task="toy")


def test_unknown_name_lists_registered_ones(fake_registry):
    with pytest.raises(FileNotFoundError, match="registered toy checkpoints: toy-tiny"):
        ckpt.resolve("nope", task="toy")


def test_lightning_ckpt_loads_weights_only(tmp_path):
    torch.save({"state_dict": {"w": torch.ones(2)}, "epoch": 3}, tmp_path / "a.ckpt")
    assert torch.equal(ckpt.load_state_dict(tmp_path / "a.ckpt")["w"], torch.ones(2))


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickled_code_is_refused(tmp_path):
    torch.save({"state_dict": {}, "payload": Evil()}, tmp_path / "evil.ckpt")
    with pytest.raises(ValueError, match="cannot be loaded as weights"):
        ckpt.load_state_dict(tmp_path / "evil.ckpt")


def test_write_registry_entry_adds_and_replaces_only_its_entry(tmp_path, monkeypatch):
    monkeypatch.setattr(ckpt, "checkpoints_dir", lambda: tmp_path)
    (tmp_path / "registry.yaml").write_text("# comment kept\ncheckpoints: {}\n")
    ckpt.write_registry_entry("seg-a", {"task": "segmentation", "metrics": {"miou": 0.5}})
    text = (tmp_path / "registry.yaml").read_text()
    text += "  other-b:\n    task: other\n    metrics: {x: 1}\n"
    (tmp_path / "registry.yaml").write_text(text)
    ckpt.write_registry_entry("seg-a", {"task": "segmentation", "metrics": {"miou": 0.9}})
    final = (tmp_path / "registry.yaml").read_text()
    assert final.startswith("# comment kept\n")
    assert yaml.safe_load(final)["checkpoints"] == {
        "seg-a": {"task": "segmentation", "metrics": {"miou": 0.9}},
        "other-b": {"task": "other", "metrics": {"x": 1}},
    }


def test_other_seed_metrics_are_part_of_an_entry(fake_registry):
    raw = yaml.safe_load((fake_registry / "registry.yaml").read_text())
    raw["checkpoints"]["toy-tiny"]["other_seeds"] = {7: {"acc": 0.88}}
    (fake_registry / "registry.yaml").write_text(yaml.safe_dump(raw))
    assert ckpt.registry()["toy-tiny"].other_seeds == {7: {"acc": 0.88}}
