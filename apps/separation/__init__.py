"""Speech separation app: MossFormer (and a ConvTasNet baseline) on LibriMix-style data.

Python API::

    from tessera.apps.separation import load
    separator = load("separation-mossformer-tiny")      # registry name or a file
    result = separator("mixture.wav")                     # result.sources: (K, T) numpy
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from tessera.apps.separation.inference import Separation, Separator

TASK = "separation"
CONFIG_DIR = Path(__file__).parent / "configs"

__all__ = ["Separation", "Separator", "load", "load_weights", "save_weights", "TASK"]


def _strip(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Separator weights from a module or Lightning state dict (drops the ``model.`` prefix)."""
    if any(k.startswith("model.") for k in state):
        return {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")}
    return state


def save_weights(path: str | Path, model: torch.nn.Module, config: dict[str, Any]) -> Path:
    """Write ``model``'s weights as safetensors with ``config`` (arch, num_spks, sample_rate,
    net) in the file's metadata, so :func:`load` needs nothing else."""
    from safetensors.torch import save_file

    from tessera.datamodules.common import atomic_write

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_write(path) as tmp:
        save_file(state, str(tmp), metadata={"tessera_separation": json.dumps(config)})
    return Path(path)


def read_config(path: str | Path) -> dict[str, Any]:
    """Model config stored with a checkpoint: safetensors metadata or Lightning hparams."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        if "tessera_separation" not in meta:
            raise ValueError(f"{path}: no tessera_separation config in the safetensors metadata")
        return json.loads(meta["tessera_separation"])
    payload = torch.load(path, map_location="cpu", weights_only=True)
    hparams = payload.get("hyper_parameters") if isinstance(payload, dict) else None
    if not hparams:
        raise ValueError(f"{path}: no hyper_parameters (not a Lightning checkpoint of this app)")
    return {k: hparams[k] for k in ("arch", "num_spks", "sample_rate", "net") if k in hparams}


def load_weights(model: torch.nn.Module, name_or_path: str | Path) -> None:
    """Load a registry name or file into ``model`` (strict)."""
    from tessera.apps.common.checkpoints import load_state_dict, resolve

    path, _ = resolve(name_or_path, TASK)
    model.load_state_dict(_strip(load_state_dict(path)), strict=True)


def load(
    name_or_path: str | Path,
    device: str | torch.device = "cpu",
    chunk_seconds: float = 4.0,
    overlap_seconds: float = 1.0,
) -> Separator:
    """A :class:`Separator` from a registry name, a ``.safetensors``/``.ckpt`` file, or a folder
    with the official MossFormer v1 ``encoder.bin``/``masknet.bin``/``decoder.bin`` (8 kHz)."""
    from tessera.apps.common.checkpoints import load_state_dict, resolve
    from tessera.apps.separation.model import build_model

    if Path(name_or_path).is_dir():
        from tessera.apps.separation.convert import load_official_mossformer

        model = load_official_mossformer(name_or_path).to(device)
        return Separator(model, 8000, model.num_spks, chunk_seconds, overlap_seconds)
    path, _ = resolve(name_or_path, TASK)
    config = read_config(path)
    model = build_model(config.get("arch", "mossformer"), config["num_spks"], config.get("net"))
    model.load_state_dict(_strip(load_state_dict(path)), strict=True)
    model = model.to(device).eval()
    return Separator(
        model, config["sample_rate"], config["num_spks"], chunk_seconds, overlap_seconds
    )
