"""Python API: export a trained module, load it back, segment one image.

    >>> from tessera.apps.segmentation import load
    >>> seg = load("segmentation-semantic-tiny")           # registry name or a file
    >>> result = seg("photo.png")                           # semantic: class map
    >>> ground = load("segmentation-grounding-tiny")
    >>> result = ground(image, "where is the small green triangle?")
    >>> result.mask, result.overlay(0.5), result.gates      # (H, W), RGB, per-scale gates

Files are safetensors written by :func:`tessera.apps.common.weights.save_weights` (the
module's hyperparameters and the data settings it was trained with in the metadata),
Lightning ``.ckpt`` files (``weights_only`` loading), or safetensors of the first release of
this app (metadata keys ``task``/``mode``/``hparams``/``data``; the shipped checkpoints).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tessera.apps.common.checkpoints import resolve
from tessera.apps.common.weights import Weights, read_weights, save_weights
from tessera.apps.segmentation.module import ReferringSegmentation, SemanticSegmentation
from tessera.datamodules.segmentation.datasets import keep_ratio
from tessera.datamodules.segmentation.io import overlay, read_image
from tessera.datamodules.segmentation.transforms import resize_pair

TASK = "segmentation"
MODULES = {"semantic": SemanticSegmentation, "grounding": ReferringSegmentation}


def export(module, path: str | Path, data: dict | None = None) -> Path:
    """Save ``module``'s weights as safetensors with what :func:`load` needs to rebuild it.

    Args:
        module: a trained :class:`SemanticSegmentation` or :class:`ReferringSegmentation`.
        path: output ``.safetensors`` file.
        data: datamodule settings to record (size, scale, layout, num_classes, ...).
    """
    return save_weights(path, module, task=TASK, data=data)


def _mode(hparams: dict) -> str:
    return "grounding" if "text_encoder" in hparams else "semantic"


def _read_first_release(path: Path) -> Weights | None:
    """Weights from a safetensors file of the app's first release, or None."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    if meta.get("task") != TASK or "hparams" not in meta:
        return None
    hparams = json.loads(meta["hparams"])
    if meta.get("mode") == "semantic":
        # written before the axial positional embeddings existed: the file has none
        hparams.setdefault("axial_positional", False)
    return Weights(path, hparams, json.loads(meta["data"]), load_file(str(path)))


def read(name_or_path: str | Path) -> Weights:
    """The :class:`~tessera.apps.common.weights.Weights` of a registry name or a file."""
    path, entry = resolve(name_or_path, TASK)
    if path.suffix == ".safetensors":
        legacy = _read_first_release(path)
        if legacy is not None:
            legacy.entry = entry
            return legacy
    return read_weights(path, TASK)


def load_module(name_or_path: str | Path, device: str | torch.device = "cpu"):
    """(LightningModule in eval mode, data settings) from a registry name or a file."""
    weights = read(name_or_path)
    module = weights.build(MODULES[_mode(weights.hparams)], pretrained=False)
    return module.to(device).eval(), weights.data


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
        """Segment ``image`` (path, PIL, or array); grounding checkpoints need ``text``.

        Semantic: resized keeping its aspect ratio to the recorded ``scale`` (none: as it
        is), whole or sliding-window inference as the checkpoint's ``inference`` says;
        grounding: resized to ``size`` x ``size``. The mask has the input's size.
        """
        img = self._image(image)
        x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float() / 255.0
        orig = torch.tensor([img.shape[:2]])
        if self.mode == "grounding":
            if text is None or not text.strip():
                raise ValueError("text: a grounding checkpoint needs a non-empty question")
            size = (self.size, self.size)
        else:
            size = keep_ratio(self.data.get("scale"))(*img.shape[:2])
        x = resize_pair(x, None, size)[0][None].to(self.device)
        batch = {"image": x, "img_size": torch.tensor([size]), "orig_size": orig}
        if self.mode == "semantic":
            mask = self.module.predict_items(batch)[0]
            return SegmentationResult(img, mask.cpu().numpy(), self.class_names)
        batch["text"] = [text]
        mask = self.module.predict_items(batch)[0].long().cpu().numpy()
        embedding = self.module.net.encode_text([text])
        gates = [g[0].cpu().numpy() for g in self.module.net.gates(embedding)]
        return SegmentationResult(img, mask, self.class_names, gates)


def load(name_or_path: str | Path, device: str = "cpu") -> SegmentationPredictor:
    """A predictor from a registry name (``segmentation-semantic-tiny``,
    ``segmentation-grounding-tiny``) or a ``.safetensors`` / ``.ckpt`` file."""
    module, data = load_module(name_or_path, device)
    return SegmentationPredictor(module, data, device)
