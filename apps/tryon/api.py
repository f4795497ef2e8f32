"""Python API: ``load()`` and the :class:`TryOnPredictor`.

from tessera.apps.tryon import load
tryon = load("tryon-mvvton-tiny")             # registry name, .safetensors, .ckpt or "paste"
result = tryon(person, garment_front, garment_back=back, mask=mask, view="back",
               steps=20, seed=23)              # PIL images in, PIL image out
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from tessera.apps.tryon.module import TryOnModule
from tessera.datamodules.tryon.agnostic import agnostic_image, prealign_garment
from tessera.datamodules.tryon.dataset import to_tensor
from tessera.datamodules.tryon.io import derive_garment_mask, warn
from tessera.datamodules.tryon.layouts import BACK, FRONT, SIDE

TASK = "tryon"
VIEWS = {"front": FRONT, "side": SIDE, "back": BACK}
DEFAULT_SIZE = (128, 96)


class TryOnPredictor:
    """A loaded try-on model and the working size ``(H, W)`` it was trained at."""

    def __init__(self, module: TryOnModule, size=DEFAULT_SIZE, device="cpu"):
        self.module = module.to(device).eval()
        self.size = tuple(size)
        self.device = torch.device(device)

    def predict_batch(
        self, batch: dict, steps: int | None = None, seed: int | None = None, progress=None
    ) -> torch.Tensor:
        """Results ``(B, 3, H, W)`` in [0, 1] for a collated batch of dataset samples."""
        moved = {k: v.to(self.device) if torch.is_tensor(v) else v for k, v in batch.items()}
        return self.module.generate(moved, steps, seed, progress).cpu()

    def _rgb(self, image, name: str) -> np.ndarray:
        image = _as_pil(image, name).convert("RGB")
        h, w = self.size
        if image.size != (w, h):
            if abs(image.size[0] / image.size[1] - w / h) > 0.02:
                warn(
                    f"{name}: {image.size[0]}x{image.size[1]} has another aspect ratio than "
                    f"{w}x{h}; resized (crop it to {w}:{h} to avoid distortion)"
                )
            image = image.resize((w, h), Image.BICUBIC)
        return np.asarray(image)

    def _mask(self, mask, name: str) -> np.ndarray:
        image = _as_pil(mask, name)
        if image.mode in ("RGBA", "LA"):  # a painted layer: opaque strokes are the mask
            image = image.getchannel("A")
        h, w = self.size
        return np.asarray(image.convert("L").resize((w, h), Image.NEAREST)) >= 128

    def sample(
        self,
        person,
        garment_front,
        garment_back=None,
        mask=None,
        view: str = "front",
        skeleton=None,
        garment_front_mask=None,
        garment_back_mask=None,
    ) -> dict:
        """One dataset-style sample (batch of 1) from user images."""
        if mask is None:
            raise ValueError("no mask: paint the garment region to replace on the person")
        if view not in VIEWS:
            raise ValueError(f"view must be one of {sorted(VIEWS)}, got {view!r}")
        person = self._rgb(person, "person")
        region = self._mask(mask, "mask")
        if not region.any():
            raise ValueError("the mask is empty: paint the garment region to replace")
        front = self._rgb(garment_front, "front garment")
        fmask = (
            self._mask(garment_front_mask, "front garment mask")
            if garment_front_mask is not None
            else derive_garment_mask(front, "front garment")
        )
        if garment_back is not None:
            back = self._rgb(garment_back, "back garment")
            bmask = (
                self._mask(garment_back_mask, "back garment mask")
                if garment_back_mask is not None
                else derive_garment_mask(back, "back garment")
            )
        else:
            back, bmask = front, fmask
        agnostic = agnostic_image(person, region)
        h, w = self.size
        sk = (
            self._rgb(skeleton, "skeleton")
            if skeleton is not None
            else np.zeros((h, w, 3), np.uint8)
        )
        use_back = VIEWS[view] == BACK and garment_back is not None
        pre_front = prealign_garment(agnostic, region, front, fmask)
        pre_back = prealign_garment(agnostic, region, back, bmask)
        t = to_tensor
        sample = {
            "person": t(person),
            "agnostic": t(agnostic),
            "mask": t(region),
            "garment_front": t(front),
            "garment_back": t(back),
            "garment_front_mask": t(fmask),
            "garment_back_mask": t(bmask),
            "prealigned": t(pre_back if use_back else pre_front),
            "prealigned_front": t(pre_front),
            "prealigned_back": t(pre_back),
            "skeleton": t(sk),
            "skeleton_front": t(sk),
            "skeleton_back": t(sk),
        }
        batch = {k: v[None] for k, v in sample.items()}
        batch |= {
            "item_id": ["input"],
            "view": torch.tensor([VIEWS[view]]),
            "use_back": torch.tensor([use_back]),
            "paired": torch.tensor([False]),
        }
        return batch

    def __call__(
        self,
        person,
        garment_front,
        garment_back=None,
        mask=None,
        view="front",
        skeleton=None,
        steps: int | None = None,
        seed: int | None = None,
        progress=None,
        **masks,
    ) -> Image.Image:
        """Try ``garment_front`` (and ``garment_back``, used for back views) on ``person``.

        Args:
            person, garment_front, garment_back: PIL images or paths.
            mask: region to regenerate (white, or the opaque strokes of a painted layer).
            view: ``front``, ``side`` or ``back`` (hard view selection).
            skeleton: optional OpenPose-style rendered skeleton of the person.
            steps, seed: DDIM steps and sampling seed.
            masks: ``garment_front_mask`` / ``garment_back_mask`` (derived when absent).

        Returns:
            The try-on result at the model's size ``(W, H)``.
        """
        batch = self.sample(person, garment_front, garment_back, mask, view, skeleton, **masks)
        out = self.predict_batch(batch, steps, seed, progress)[0]
        array = (out.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        return Image.fromarray(array)


def _as_pil(image, name: str) -> Image.Image:
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, np.ndarray):
        return Image.fromarray(image)
    try:
        return Image.open(Path(image))
    except (OSError, ValueError) as err:
        raise ValueError(f"{name}: cannot read {image} as an image ({err})") from err


def save_weights(path, module: TryOnModule, size) -> Path:
    """Safetensors with the module's hparams and the working size (``load`` needs nothing
    else). A module that keeps an EMA is written with the averaged weights as its network
    (the ones it samples with) and no EMA copy."""
    from tessera.apps.common.weights import save_weights as save

    if module.ema is not None:
        export = TryOnModule(**(dict(module.hparams) | {"ema_decay": 0.0, "weights": None}))
        export.model.load_state_dict(module.ema.module.state_dict())
        module = export
    return save(path, module, task=TASK, data={"size": list(size)})


def load(name_or_path: str | Path, device: str | torch.device = "cpu") -> TryOnPredictor:
    """A :class:`TryOnPredictor` from a registry name, a ``.safetensors``/``.ckpt`` file, or
    ``"paste"`` (the paste baseline, no weights)."""
    if str(name_or_path) == "paste":
        return TryOnPredictor(TryOnModule(method="paste"), DEFAULT_SIZE, device)
    from tessera.apps.common.weights import read_weights

    weights = read_weights(name_or_path, TASK)
    hparams = weights.hparams | {"weights": None}
    module = TryOnModule(**hparams)
    try:
        module.load_state_dict(weights.state_dict, strict=True)
    except RuntimeError as err:
        raise ValueError(f"{weights.path}: weights do not fit the try-on model ({err})") from err
    return TryOnPredictor(module, weights.data.get("size", DEFAULT_SIZE), device)
