"""The checkpoint registry (``checkpoints/registry.yaml``) and safe weight loading."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import torch
import yaml

from tessera.datamodules.common.io import atomic_write_text


@dataclass(frozen=True)
class CheckpointEntry:
    """One shipped checkpoint: where it is, how it was made and what it scores."""

    name: str
    task: str
    config: str
    file: str
    sha256: str
    command: str
    data: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    # the same metrics on worlds of seeds nobody trained on: {seed: {metric: value}}
    other_seeds: dict = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return checkpoints_dir() / self.file


def checkpoints_dir() -> Path:
    return Path(str(resources.files("tessera.checkpoints")))


def registry() -> dict[str, CheckpointEntry]:
    """All registry entries by name."""
    raw = yaml.safe_load((checkpoints_dir() / "registry.yaml").read_text()) or {}
    return {
        name: CheckpointEntry(name=name, **fields)
        for name, fields in (raw.get("checkpoints") or {}).items()
    }


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve(name_or_path: str | Path, task: str) -> tuple[Path, CheckpointEntry | None]:
    """A checkpoint file from a registry name or a path, checked before anything loads it.

    Raises:
        FileNotFoundError: neither an existing file nor a registered name (lists the names).
        ValueError: the registered file's sha256 differs, or it belongs to another task.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path, None
    entries = registry()
    entry = entries.get(str(name_or_path))
    if entry is None:
        names = ", ".join(n for n, e in entries.items() if e.task == task) or "none"
        raise FileNotFoundError(
            f"checkpoint {str(name_or_path)!r} is neither a file nor a registered name "
            f"(registered {task} checkpoints: {names}); pass a path to a .safetensors or "
            f".ckpt file, or run `make checkpoints` to rebuild the shipped ones"
        )
    if entry.task != task:
        raise ValueError(f"checkpoint {entry.name!r} is for task {entry.task!r}, not {task!r}")
    if not entry.path.is_file():
        raise FileNotFoundError(
            f"{entry.path}: registered checkpoint file is missing; rebuild it with "
            f"`{entry.command}`"
        )
    actual = sha256_of(entry.path)
    if actual != entry.sha256:
        raise ValueError(
            f"{entry.path}: sha256 {actual} does not match the registry ({entry.sha256}); "
            f"the file is corrupt or was re-trained without updating checkpoints/registry.yaml"
        )
    return entry.path, entry


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Weights from a safetensors file or a Lightning ``.ckpt``, never unpickling code."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt file or a pickle with arbitrary objects
        raise ValueError(
            f"{path}: cannot be loaded as weights ({err.__class__.__name__}: {err}); "
            f"expected a .safetensors file or a Lightning .ckpt"
        ) from err
    state = payload.get("state_dict", payload) if isinstance(payload, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: no state_dict inside")
    return state


def write_registry_entry(name: str, entry: dict) -> None:
    """Replace (or add) only ``name``'s block in ``registry.yaml``; other entries and the
    header comments stay byte-for-byte (apps re-training their checkpoints call this)."""
    path = checkpoints_dir() / "registry.yaml"
    text = re.sub(r"^checkpoints:\s*\{\}\s*$", "checkpoints:", path.read_text(), flags=re.M)
    block = yaml.safe_dump({name: entry}, sort_keys=False, width=1000)
    block = "".join(f"  {line}\n" for line in block.splitlines())
    own = re.compile(rf"^  {re.escape(name)}:\n(?:^(?:    .*)?\n)*", re.M)
    text = own.sub("", text)
    atomic_write_text(path, text.rstrip("\n") + "\n" + block)
