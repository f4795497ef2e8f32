"""Python API of the separation app: :func:`load` a :class:`Separator`, weight files.

    from tessera.apps.separation import load
    separator = load("separation-mossformer-tiny")      # registry name, file or official dir
    result = separator("mixture.wav")                     # result.sources: (K, T) numpy

Weight files are the common app format (:mod:`tessera.apps.common.weights`: safetensors with
the module's hparams and the data's sample rate). Also read: Lightning ``.ckpt`` files of this
app, the earlier separation safetensors (model weights + a ``tessera_separation`` config), and
a folder with the official MossFormer v1 ``encoder.bin``/``masknet.bin``/``decoder.bin``
(8 kHz; :mod:`.convert`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tessera.apps.separation.inference import Separation, Separator

TASK = "separation"
LEGACY_KEY = "tessera_separation"
MODEL_KEYS = ("arch", "num_spks", "sample_rate", "net")

__all__ = ["Separation", "Separator", "SeparatorWeights", "load", "load_weights",
           "read_separator_weights", "save_weights", "TASK"]  # fmt: skip


@dataclass
class SeparatorWeights:
    """A separator checkpoint: ``config`` (``arch``, ``num_spks``, ``sample_rate``, ``net``),
    the separator's ``state`` (keys of :class:`~.model.MossFormer`/``ConvTasNet``) and, for
    official files, the stored frequency ``buffers``."""

    path: Path
    config: dict[str, Any]
    state: dict[str, torch.Tensor]
    buffers: dict[str, torch.Tensor] = field(default_factory=dict)

    def build(self) -> torch.nn.Module:
        """The separator with these weights, in eval mode."""
        from tessera.apps.separation.model import build_model

        c = self.config
        model = build_model(c.get("arch", "mossformer"), c["num_spks"], c.get("net"))
        self.load_into(model)
        return model.eval()

    def load_into(self, model: torch.nn.Module) -> None:
        """Strictly load the weights (and official frequency buffers) into ``model``."""
        from tessera.apps.separation.convert import set_frequency_buffers

        try:
            model.load_state_dict(self.state, strict=True)
        except RuntimeError as err:
            raise ValueError(
                f"{self.path}: weights do not fit this model; was it trained with another "
                f"config? ({err})"
            ) from err
        if self.buffers:
            set_frequency_buffers(model, self.buffers)


def _strip(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Separator weights from a module or Lightning state dict (drops the ``model.`` prefix)."""
    if any(k.startswith("model.") for k in state):
        return {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")}
    return state


def save_weights(path: str | Path, module) -> Path:
    """Write a :class:`~.module.SeparationModule` as a common-format weight file (its hparams,
    and the sample rate and speaker count it works at) that :func:`load` reads alone."""
    from tessera.apps.common.weights import save_weights as save

    hp = module.hparams
    hparams = {k: v for k, v in hp.items() if k != "init_weights"}
    data = {"sample_rate": hp["sample_rate"], "num_spks": hp["num_spks"]}
    return save(path, module, task=TASK, data=data, hparams=hparams)


def read_separator_weights(name_or_path: str | Path) -> SeparatorWeights:
    """Read a registry name, a weight file of this app or an official MossFormer folder.

    Raises:
        FileNotFoundError: no such file, folder or registered name.
        ValueError: a file of another app, or one without the config this app records.
    """
    if Path(name_or_path).is_dir():
        from tessera.apps.separation.convert import (
            config_from_state,
            convert_official_state,
            frequency_buffers,
            official_parts,
        )

        path = Path(name_or_path)
        parts = official_parts(path)
        state = convert_official_state(parts["encoder"], parts["masknet"], parts["decoder"])
        net = config_from_state(state)
        config = {"arch": "mossformer", "num_spks": net.pop("num_spks"), "sample_rate": 8000,
                  "net": net}  # fmt: skip
        return SeparatorWeights(path, config, state, frequency_buffers(parts["masknet"]))
    from tessera.apps.common.checkpoints import resolve

    path, _ = resolve(name_or_path, TASK)
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        if LEGACY_KEY in meta:
            from tessera.apps.common.checkpoints import load_state_dict

            config = json.loads(meta[LEGACY_KEY])
            return SeparatorWeights(path, config, _strip(load_state_dict(path)))
    from tessera.apps.common.weights import read_weights

    weights = read_weights(path, TASK)
    missing = [k for k in ("num_spks", "sample_rate") if k not in weights.hparams]
    if missing:
        raise ValueError(f"{path}: no {missing} recorded (not a separation checkpoint)")
    config = {k: weights.hparams[k] for k in MODEL_KEYS if k in weights.hparams}
    return SeparatorWeights(path, config, _strip(weights.state_dict))


def load_weights(
    model: torch.nn.Module, name_or_path: str | Path, sample_rate: int | None = None
) -> SeparatorWeights:
    """Load a registry name, file or official folder into ``model`` (strict).

    Raises:
        ValueError: the weights were trained at another ``sample_rate`` than given.
    """
    weights = read_separator_weights(name_or_path)
    rate = weights.config.get("sample_rate")
    if sample_rate is not None and rate is not None and rate != sample_rate:
        raise ValueError(
            f"{weights.path} was trained at {rate} Hz but the model is set to {sample_rate} Hz; "
            f"set model.sample_rate and data.sample_rate to {rate}"
        )
    weights.load_into(model)
    return weights


def load(
    name_or_path: str | Path,
    device: str | torch.device = "cpu",
    chunk_seconds: float | None = 4.0,
    overlap_seconds: float = 1.0,
) -> Separator:
    """A :class:`Separator` from a registry name, a weight file (``.safetensors``/``.ckpt``) or
    a folder with the official MossFormer v1 weights; inputs are resampled to the rate the
    weights were trained at. ``chunk_seconds=None`` separates each input in one pass."""
    weights = read_separator_weights(name_or_path)
    model = weights.build().to(device)
    c = weights.config
    return Separator(model, c["sample_rate"], c["num_spks"], chunk_seconds, overlap_seconds)
