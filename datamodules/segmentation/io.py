"""Image and label-map files: reading with checks, writing index (palette) and 0/255 PNGs.

Label maps follow mmsegmentation: a single-channel PNG whose pixel values are class
indices (palette ``P`` or grayscale ``L``), ``ignore_index`` (default 255) for unlabeled
pixels, and optionally ``reduce_zero_label`` (0 = "other" is ignored, classes shift down by
one, as for ADE20K). Binary masks (ISIC, VizWiz grounding) are stored as 0/255.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from tessera.datamodules.common import DataError, atomic_write


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


@dataclass(frozen=True)
class LabelSpec:
    """How the values stored in label files become class indices.

    Order: ``label_map`` (raw file value -> value; ``label_map_default`` for unlisted values,
    None keeps them), then ``reduce_zero_label`` (mmseg: 0 -> ignore, v -> v - 1), then the
    check that every value is a class ``0..num_classes-1`` or ``ignore_index``.

    ``binary`` is shorthand for 0/255 foreground masks: ``label_map={255: 1}``, two classes.
    """

    num_classes: int
    ignore_index: int = 255
    reduce_zero_label: bool = False
    label_map: tuple[tuple[int, int], ...] = ()
    label_map_default: int | None = None

    @classmethod
    def build(
        cls,
        num_classes: int,
        ignore_index: int = 255,
        reduce_zero_label: bool = False,
        label_map: dict[int, int] | None = None,
        label_map_default: int | None = None,
        binary: bool = False,
    ) -> LabelSpec:
        mapping = dict(label_map or {})
        if binary:
            mapping = {255: 1, **mapping}
        return cls(
            num_classes,
            ignore_index,
            reduce_zero_label,
            tuple(sorted((int(k), int(v)) for k, v in mapping.items())),
            label_map_default,
        )

    def lut(self) -> np.ndarray:
        """Lookup table raw value (0..65535) -> class index or ``ignore_index``."""
        raw = np.arange(65536, dtype=np.int64)
        out = (
            raw.copy()
            if self.label_map_default is None
            else np.full_like(raw, self.label_map_default)
        )
        for k, v in self.label_map:
            out[k] = v
        if self.reduce_zero_label:
            out = np.where(out == 0, 255, out - 1)
            out[out == 254] = 255
            out[out == 255] = self.ignore_index
        return out

    def bad_values(self, mapped: np.ndarray) -> np.ndarray:
        """Mapped values that are neither a class nor ``ignore_index``."""
        mapped = np.asarray(mapped)
        return mapped[(mapped != self.ignore_index) & ((mapped < 0) | (mapped >= self.num_classes))]

    def hint(self, raw_values) -> str:
        """How to fix labels whose raw values do not fit this spec."""
        vals = {int(v) for v in raw_values}
        if vals <= {0, 255} and not self.label_map:
            return (
                "these look like binary 0/255 masks: set binary: true (num_classes 2), or "
                "label_map: {255: 1}"
            )
        if self.num_classes in vals and 0 in vals and not self.reduce_zero_label:
            return "if 0 means 'other/unlabeled', set reduce_zero_label: true"
        return f"declare num_classes >= {max(vals) + 1}, or map the values with label_map"


def read_label_file(path: str | Path) -> np.ndarray:
    """The raw values of a single-channel label image ``(H, W)`` int64.

    Raises:
        DataError: missing, unreadable, or a colour (multi-channel) image.
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
    return arr.astype(np.int64)


def read_label(path: str | Path, spec: LabelSpec) -> np.ndarray:
    """A label map as ``(H, W)`` int64 class indices, ``spec.ignore_index`` for unlabeled.

    Raises:
        DataError: unreadable file, colour mask, or values outside the declared classes.
    """
    raw = read_label_file(path)
    label = spec.lut()[raw]
    bad = np.unique(spec.bad_values(label))
    if bad.size:
        raise DataError(
            path,
            f"label values {bad[:8].tolist()} are outside the declared classes "
            f"0..{spec.num_classes - 1} (ignore_index={spec.ignore_index})",
            spec.hint(np.unique(raw)),
        )
    return label


def read_binary_mask(path: str | Path) -> np.ndarray:
    """A foreground mask ``(H, W)`` int64 0/1 from a 0/255 grayscale, 1-bit, palette or RGB(A)
    image: any channel above half its range is foreground (alpha is ignored).

    Raises:
        DataError: missing or unreadable file.
    """
    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode == "1":
                return np.asarray(img).astype(np.int64)
            if img.mode == "P":
                arr = np.asarray(img)
                return (arr > 0).astype(np.int64)
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(img, dtype=np.int64)
                return (arr > (arr.max() // 2 if arr.max() > 1 else 0)).astype(np.int64)
            arr = np.asarray(img.convert("RGB" if img.mode not in ("L",) else "L"))
    except FileNotFoundError as err:
        raise DataError(path, "mask file not found") from err
    except (OSError, ValueError, SyntaxError) as err:
        raise DataError(path, f"not a readable mask image ({err})") from err
    if arr.ndim == 3:
        arr = arr.max(-1)
    if arr.max() <= 1:  # stored as 0/1
        return arr.astype(np.int64)
    return (arr > 127).astype(np.int64)


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
