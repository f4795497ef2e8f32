"""Python API: export a trained module, load it back, segment one image.

    >>> from tessera.apps.segmentation import load
    >>> seg = load("segmentation-semantic-tiny")           # registry name or a file
    >>> result = seg("photo.png")                           # semantic: class map
    >>> ground = load("segmentation-grounding-tiny")
    >>> result = ground(image, "where is the small green triangle?")
    >>> result.mask, result.overlay(0.5), result.gates      # (H, W), RGB, per-scale gates

Files are safetensors whose metadata records the module class, its hyperparameters and the
data settings it was trained with, or Lightning ``.ckpt`` files (``weights_only`` loading).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from tessera.apps.common.checkpoints import resolve
from tessera.apps.segmentation.module import ReferringSegmentation, SemanticSegmentation
from tessera.datamodules.segmentation.io import overlay, read_image

TASK = "segmentation"
MODULES = {"semantic": SemanticSegmentation, "grounding": ReferringSegmentation}


def export(module, path: str | Path, data: dict | None = None) -> Path:
    """Save ``module``'s weights as safetensors with what :func:`load` needs to rebuild it.

    Args:
        module: a trained :class:`SemanticSegmentation` or :class:`ReferringSegmentation`.
        path: output ``.safetensors`` file.
        data: datamodule settings to record (size, layout, num_classes, ...).
    """
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    metadata = {
        "task": TASK,
        "mode": module.mode,
        "hparams": json.dumps(dict(module.hparams)),
        "data": json.dumps(data or {}),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata=metadata)
    path.chmod(0o644)
    return path


def _read(path: Path) -> tuple[str, dict, dict, dict]:
    """(mode, hparams, data settings, state_dict) from a safetensors or Lightning file."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        if meta.get("task") != TASK:
            raise ValueError(f"{path}: not a segmentation checkpoint (metadata task missing)")
        return (
            meta["mode"],
            json.loads(meta["hparams"]),
            json.loads(meta["data"]),
            load_file(str(path)),
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"{path}: cannot be loaded as weights ({err})") from err
    # LightningCLI adds private keys such as ``_class_path``; they are not init arguments
    hparams = {
        k: v for k, v in payload.get("hyper_parameters", {}).items() if not k.startswith("_")
    }
    if "state_dict" not in payload or not hparams:
        raise ValueError(f"{path}: expected a Lightning checkpoint with hyper_parameters")
    mode = "grounding" if "text_encoder" in hparams else "semantic"
    data = dict(payload.get("datamodule_hyper_parameters", {}))
    return mode, hparams, data, payload["state_dict"]


def load_module(name_or_path: str | Path, device: str | torch.device = "cpu"):
    """(LightningModule in eval mode, data settings) from a registry name or a file."""
    path, _ = resolve(name_or_path, TASK)
    mode, hparams, data, state = _read(Path(path))
    hparams["pretrained"] = False  # weights come from the file; never download a backbone
    module = MODULES[mode](**hparams)
    module.load_state_dict(state)
    return module.to(device).eval(), data


@dataclass
class SegmentationResult:
    """One prediction at the input image's size.

    Attributes:
        image: the input ``(H, W, 3)`` uint8.
        mask: ``(H, W)`` int64 class indices (semantic) or 0/1 (grounding).
        class_names: names of the mask values.
        gates: grounding only: per-scale sentence-attention channel gates ``[(C_s,)]``.
    """

    image: np.ndarray
    mask: np.ndarray
    class_names: list[str]
    gates: list[np.ndarray] = field(default_factory=list)

    def overlay(self, opacity: float = 0.5) -> np.ndarray:
        return overlay(self.image, self.mask, opacity)

    def areas(self) -> dict[str, float]:
        """Fraction of the image covered by each class."""
        counts = np.bincount(self.mask.ravel(), minlength=len(self.class_names))
        return {
            n: float(c) / self.mask.size for n, c in zip(self.class_names, counts, strict=False)
        }


class SegmentationPredictor:
    """Segments single images with a loaded checkpoint (see :func:`load`)."""

    def __init__(self, module, data: dict, device: str | torch.device = "cpu"):
        self.module, self.data, self.device = module, data, torch.device(device)
        self.mode = module.mode
        self.size = int(data.get("size", 64))
        if self.mode == "semantic":
            self.class_names = list(module.class_names)
        else:
            self.class_names = ["background", "target"]

    def _image(self, image) -> np.ndarray:
        if isinstance(image, (str, Path)):
            return read_image(image)
        if isinstance(image, Image.Image):
            return np.asarray(image.convert("RGB"))
        arr = np.asarray(image)
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=-1)
        if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
            raise ValueError(f"image must be (H, W), (H, W, 3) or (H, W, 4), got {arr.shape}")
        arr = arr[..., :3]
        if arr.dtype != np.uint8:
            arr = np.clip(arr * 255.0 if arr.max() <= 1.0 else arr, 0, 255).astype(np.uint8)
        return arr

    @torch.no_grad()
    def __call__(self, image, text: str | None = None) -> SegmentationResult:
        """Segment ``image`` (path, PIL, or array); grounding checkpoints need ``text``."""
        img = self._image(image)
        x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float()[None] / 255.0
        x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        x = x.to(self.device)
        size = img.shape[:2]
        if self.mode == "semantic":
            logits = F.interpolate(self.module(x), size=size, mode="bilinear", align_corners=False)
            return SegmentationResult(img, logits[0].argmax(0).cpu().numpy(), self.class_names)
        if text is None or not text.strip():
            raise ValueError("text: a grounding checkpoint needs a non-empty question")
        embedding = self.module.net.encode_text([text])
        logits = self.module(x, embedding=embedding)
        found = self.module.binarize(torch.sigmoid(logits[:, 0])).any()
        prob = torch.sigmoid(F.interpolate(logits, size=size, mode="bilinear", align_corners=False))
        mask = ((prob[0, 0] > self.module.threshold) & found).long().cpu().numpy()
        gates = [g[0].cpu().numpy() for g in self.module.net.gates(embedding)]
        return SegmentationResult(img, mask, self.class_names, gates)


def load(name_or_path: str | Path, device: str = "cpu") -> SegmentationPredictor:
    """A predictor from a registry name (``segmentation-semantic-tiny``,
    ``segmentation-grounding-tiny``) or a ``.safetensors`` / ``.ckpt`` file."""
    module, data = load_module(name_or_path, device)
    return SegmentationPredictor(module, data, device)
