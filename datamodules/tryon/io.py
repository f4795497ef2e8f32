"""Image readers that name the file on failure and warn (once per file) when they resize."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from scipy import ndimage

from tessera.datamodules.common import DataError
from tessera.datamodules.tryon.labels import LabelSet


class TryOnDataWarning(UserWarning):
    """Something in the data was repaired on the fly (resized, derived); the message says what."""


def warn(message: str) -> None:
    warnings.warn(message, TryOnDataWarning, stacklevel=3)


def open_image(path: str | Path) -> Image.Image:
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file is missing")
    try:
        image = Image.open(path)
        image.load()
    except (OSError, UnidentifiedImageError) as err:
        raise DataError(
            path, f"cannot be read as an image ({err})", "re-export it as JPEG/PNG"
        ) from err
    return image


def _resized(image: Image.Image, size: tuple[int, int], resample, path, reference) -> Image.Image:
    """``size`` = (H, W). A part whose size differs from ``reference`` (its image's size,
    e.g. the person's for a parse map) is resized with a warning."""
    h, w = size
    if reference is not None and image.size != tuple(reference):
        warn(
            f"{path}: size {image.size[0]}x{image.size[1]} differs from its image "
            f"({reference[0]}x{reference[1]}); resized to {w}x{h}"
        )
    if image.size == (w, h):
        return image
    return image.resize((w, h), resample)


def read_rgb(path, size: tuple[int, int], reference=None) -> np.ndarray:
    """``(H, W, 3)`` uint8 at ``size`` = (H, W)."""
    image = open_image(path)
    return np.asarray(_resized(image.convert("RGB"), size, Image.BICUBIC, path, reference))


def read_binary_mask(path, size: tuple[int, int], reference=None) -> np.ndarray:
    """Bool ``(H, W)``: white (≥ 128) pixels of a grey/RGB mask image."""
    image = open_image(path).convert("L")
    return np.asarray(_resized(image, size, Image.NEAREST, path, reference)) >= 128


def read_parse(path, size: tuple[int, int], labels: LabelSet, reference=None) -> np.ndarray:
    """``(H, W)`` label ids of a P-mode (or grey) parse map, checked against ``labels``."""
    image = open_image(path)
    if image.mode not in ("P", "L", "I", "I;16"):
        raise DataError(
            path,
            f"parse map is mode {image.mode}, expected a label PNG (P or L) with ids",
            "colour-rendered parse maps cannot be used; export the label ids",
        )
    ids = np.asarray(image) if image.mode != "P" else np.asarray(image, dtype=np.uint8)
    top = int(ids.max()) if ids.size else 0
    if top >= labels.num_classes:
        raise DataError(
            path,
            f"label id {top} outside the {labels.num_classes} {labels.name.upper()} classes",
            "0/255 binary masks are not parse maps; use the dataset's parse labels",
        )
    resized = _resized(Image.fromarray(ids.astype(np.uint8)), size, Image.NEAREST, path, reference)
    return np.asarray(resized).astype(np.int64)


def derive_garment_mask(garment: np.ndarray, path) -> np.ndarray:
    """Mask of a shop garment photographed on a light, flat background: pixels that differ
    from the border colour (median of the outer ring), cleaned of specks."""
    ring = np.concatenate([garment[0], garment[-1], garment[:, 0], garment[:, -1]])
    background = np.median(ring, axis=0)
    distance = np.abs(garment.astype(np.float32) - background).max(axis=-1)
    mask = ndimage.binary_opening(distance > 24)
    mask = ndimage.binary_fill_holes(mask)
    warn(f"{path}: garment has no mask; derived one from the background colour")
    return mask
