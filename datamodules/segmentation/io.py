"""Image and label-map files: reading with checks, writing index (palette) and 0/255 PNGs.

Label maps follow mmsegmentation: a single-channel PNG whose pixel values are class
indices (palette ``P`` or grayscale ``L``), ``ignore_index`` (default 255) for unlabeled
pixels, and optionally ``reduce_zero_label`` (0 = "other" is ignored, classes shift down by
one, as for ADE20K). Binary masks (ISIC, VizWiz grounding) are stored as 0/255.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from tessera.datamodules.common import DataError, atomic_write

MaskFormat = Literal["index", "binary255"]


def palette(num_entries: int = 256) -> np.ndarray:
    """The Pascal VOC colour map ``(num_entries, 3)`` uint8 (bit-interleaved index colours)."""
    colours = np.zeros((num_entries, 3), dtype=np.uint8)
    for i in range(num_entries):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        colours[i] = (r, g, b)
    colours[255] = (224, 224, 192)  # VOC's colour for the ignore/boundary label
    return colours


def read_image(path: str | Path) -> np.ndarray:
    """An image as ``(H, W, 3)`` uint8 RGB.

    Grayscale is replicated to three channels, the alpha channel of RGBA/LA is dropped and
    16-bit images are scaled to 8 bits, so every supported file yields the same layout.

    Raises:
        DataError: the file is missing or not a readable image.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(img, dtype=np.float64)
                arr = np.clip(arr / max(arr.max(), 1.0) * 255.0, 0, 255).astype(np.uint8)
                return np.repeat(arr[..., None], 3, axis=-1)
            return np.array(img.convert("RGB"), dtype=np.uint8)
    except FileNotFoundError as err:
        raise DataError(path, "image file not found") from err
    except (OSError, ValueError, SyntaxError) as err:
        raise DataError(path, f"not a readable image ({err})", "re-export the file") from err


def _label_values_hint(values: np.ndarray, num_classes: int, mask_format: str) -> str:
    vals = set(values.tolist())
    if vals <= {0, 255} and mask_format == "index":
        return (
            "this looks like a binary 0/255 mask: use mask_format='binary255' (num_classes=2), "
            "or ignore_index=255 if 255 marks unlabeled pixels"
        )
    if max(vals) == num_classes and 0 in vals:
        return "if 0 means 'other/unlabeled', set reduce_zero_label=True"
    return f"declare num_classes >= {max(vals) + 1} or re-map the label values"


def read_label(
    path: str | Path,
    num_classes: int,
    ignore_index: int = 255,
    reduce_zero_label: bool = False,
    mask_format: MaskFormat = "index",
) -> np.ndarray:
    """A label map as ``(H, W)`` int64 class indices, ``ignore_index`` for unlabeled pixels.

    Args:
        path: PNG (or any lossless single-channel image) with index values.
        num_classes: declared number of classes; any other value (besides ``ignore_index``)
            is an error instead of silently training on garbage.
        ignore_index: value of unlabeled pixels, dropped from losses and metrics.
        reduce_zero_label: mmseg semantics: 0 becomes ``ignore_index``, v becomes v - 1.
        mask_format: ``"index"`` or ``"binary255"`` (0 = background, 255 = foreground → 1).

    Raises:
        DataError: unreadable file, colour (RGB) mask, or values outside the declared classes.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            arr = np.asarray(img)
    except FileNotFoundError as err:
        raise DataError(path, "label file not found") from err
    except (OSError, ValueError, SyntaxError) as err:
        raise DataError(path, f"not a readable label image ({err})") from err
    if arr.ndim != 2:
        raise DataError(
            path,
            f"label map has mode {mode} with {arr.shape[-1]} channels; expected one channel "
            "of class indices",
            "convert colour-coded masks to index PNGs (palette or grayscale)",
        )
    label = arr.astype(np.int64)
    if mask_format == "binary255":
        bad = np.setdiff1d(np.unique(label), [0, 255])
        if bad.size:
            raise DataError(
                path,
                f"binary mask has values {bad[:8].tolist()} besides 0 and 255",
                "store masks as 0/255 PNGs (resize with nearest neighbour, not bilinear)",
            )
        return (label == 255).astype(np.int64)
    if mask_format != "index":
        raise ValueError(f"mask_format must be 'index' or 'binary255', got {mask_format!r}")
    if reduce_zero_label:
        label = np.where(label == 0, 255, label - 1)
        label[label == 254] = 255
        label[label == 255] = ignore_index
    values = np.unique(label)
    bad = values[(values != ignore_index) & ((values < 0) | (values >= num_classes))]
    if bad.size:
        raise DataError(
            path,
            f"label values {bad[:8].tolist()} are outside the declared classes "
            f"0..{num_classes - 1} (ignore_index={ignore_index})",
            _label_values_hint(values, num_classes, mask_format),
        )
    return label


def write_label(path: str | Path, label: np.ndarray, binary: bool = False) -> Path:
    """Atomically write ``(H, W)`` class indices as a palette PNG, or 0/1 as a 0/255 PNG."""
    label = np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f"label must be (H, W), got shape {label.shape}")
    if binary:
        img = Image.fromarray((label > 0).astype(np.uint8) * 255, mode="L")
    else:
        if label.min() < 0 or label.max() > 255:
            raise ValueError("label values must be in 0..255 to be stored in a PNG")
        img = Image.fromarray(label.astype(np.uint8), mode="P")
        img.putpalette(palette().reshape(-1).tolist())
    with atomic_write(path) as tmp:
        img.save(tmp)
    return Path(path)


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Atomically write an ``(H, W, 3)`` uint8 image (format from the suffix)."""
    with atomic_write(path) as tmp:
        Image.fromarray(np.asarray(image, dtype=np.uint8)).save(tmp)
    return Path(path)


def overlay(image: np.ndarray, label: np.ndarray, opacity: float = 0.5) -> np.ndarray:
    """Blend palette colours of ``label`` (H, W) over ``image`` (H, W, 3); class 0 stays clear."""
    colours = palette()[np.clip(label, 0, 255)]
    alpha = np.where(label[..., None] > 0, float(opacity), 0.0)
    out = image.astype(np.float32) * (1 - alpha) + colours.astype(np.float32) * alpha
    return out.round().astype(np.uint8)
