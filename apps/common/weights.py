"""Weight files of the task apps: one format for every app.

A shipped or exported checkpoint is a safetensors file whose metadata holds what is needed
to rebuild the module without any other file:

- ``tessera_task``: the task name (a file of another app is refused with a clear message);
- ``tessera_hparams``: JSON of the LightningModule's init arguments (``module.hparams``);
- ``tessera_data``: JSON of the data settings it was trained with (sample rate, class names,
  input size, ...), which the predictor needs to prepare inputs the same way.

Lightning ``.ckpt`` files (what ``fit`` writes) are read as well, with ``weights_only=True``:
their ``hyper_parameters`` and ``datamodule_hyper_parameters`` play the same roles.

    >>> save_weights("model.safetensors", module, task="pose", data={"input_size": [256, 192]})
    >>> weights = read_weights("model.safetensors", task="pose")   # or a registry name
    >>> module = weights.build(PoseModule)                          # strict load, eval mode
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tessera.apps.common.checkpoints import CheckpointEntry, resolve
from tessera.datamodules.common.io import atomic_write

TASK_KEY = "tessera_task"
HPARAMS_KEY = "tessera_hparams"
DATA_KEY = "tessera_data"


def _public(hparams: dict[str, Any]) -> dict[str, Any]:
    """Init arguments only: LightningCLI adds private keys such as ``_class_path``."""
    return {k: v for k, v in dict(hparams).items() if not str(k).startswith("_")}


@dataclass
class Weights:
    """A checkpoint read from disk.

    Attributes:
        path: the file that was read.
        hparams: the module's init arguments.
        data: the data settings recorded with it.
        state_dict: the module's weights (keys as in ``module.state_dict()``).
        entry: the registry entry when loaded by name, else ``None``.
    """

    path: Path
    hparams: dict[str, Any]
    data: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    entry: CheckpointEntry | None = field(default=None, repr=False)

    def build(self, module_class: type[torch.nn.Module], **overrides: Any) -> torch.nn.Module:
        """Instantiate ``module_class(**hparams, **overrides)``, load the weights strictly and
        return it in eval mode (e.g. ``pretrained=False`` so nothing is downloaded)."""
        module = module_class(**(self.hparams | overrides))
        try:
            module.load_state_dict(self.state_dict, strict=True)
        except RuntimeError as err:  # missing/unexpected keys or shape mismatches
            raise ValueError(
                f"{self.path}: weights do not fit {module_class.__name__}; was it trained with "
                f"another config or another version of the app? ({err})"
            ) from err
        return module.eval()


def save_weights(
    path: str | Path,
    module: torch.nn.Module,
    *,
    task: str,
    data: dict[str, Any] | None = None,
    hparams: dict[str, Any] | None = None,
) -> Path:
    """Write ``module``'s weights as safetensors with its hparams and data settings.

    Args:
        path: the ``.safetensors`` file to write (atomically; parents are created).
        module: the trained module; its ``hparams`` are recorded unless ``hparams`` is given.
        task: the app's task name.
        data: data settings the predictor needs (JSON-serialisable).
        hparams: init arguments to record instead of ``module.hparams``.
    """
    from safetensors.torch import save_file

    if hparams is None:
        hparams = getattr(module, "hparams", {})
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    metadata = {
        TASK_KEY: task,
        HPARAMS_KEY: json.dumps(_public(hparams)),
        DATA_KEY: json.dumps(data or {}),
    }
    with atomic_write(path) as tmp:
        save_file(state, str(tmp), metadata=metadata)
    return Path(path)


def read_weights(name_or_path: str | Path, task: str) -> Weights:
    """Read a registry name, a safetensors file written by :func:`save_weights`, or a
    Lightning ``.ckpt`` of this app.

    Raises:
        FileNotFoundError: not a file and not a registered name (see ``resolve``).
        ValueError: a file of another task, without the metadata, or not loadable as weights.
    """
    path, entry = resolve(name_or_path, task)
    if path.suffix == ".safetensors":
        from safetensors import safe_open
        from safetensors.torch import load_file

        try:
            with safe_open(str(path), "pt") as f:
                meta = f.metadata() or {}
            state = load_file(str(path))
        except Exception as err:
            raise ValueError(f"{path}: not a readable safetensors file ({err})") from err
        if meta.get(TASK_KEY) != task:
            found = meta.get(TASK_KEY, "no tessera metadata")
            raise ValueError(f"{path}: not a {task} checkpoint ({found})")
        hparams = json.loads(meta.get(HPARAMS_KEY, "{}"))
        data = json.loads(meta.get(DATA_KEY, "{}"))
        return Weights(path, hparams, data, state, entry)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt file, or a pickle with arbitrary objects
        raise ValueError(
            f"{path}: cannot be loaded as weights ({err.__class__.__name__}: {err}); "
            "expected a .safetensors file or a Lightning .ckpt"
        ) from err
    if not isinstance(payload, dict) or "state_dict" not in payload:
        raise ValueError(f"{path}: not a Lightning checkpoint (no state_dict)")
    hparams = _public(payload.get("hyper_parameters") or {})
    data = _public(payload.get("datamodule_hyper_parameters") or {})
    return Weights(path, hparams, data, payload["state_dict"], entry)
