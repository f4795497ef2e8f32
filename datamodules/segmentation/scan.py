"""One pass over every label map of a split before training or evaluation.

A dataset that loads without error can still be garbage for the model: 0/255 binary masks
read as class indices (255 is ``ignore_index``, so every foreground pixel is dropped and an
all-background prediction scores mIoU 1.0), label values outside the classes, labels whose
size differs from their image. :func:`scan_labels` finds these over the whole split up front
(progress bar) and raises one :class:`DataError` naming the files and the fix.

What it reads per file (the raw label values and the label/image sizes, from the headers
for images) is cached in ``$TESSERA_CACHE_DIR/label_scan`` (default
``~/.cache/tessera``) under a key of the file list with sizes and mtimes, so a re-run over
unchanged files reads nothing, and the checks always run with the current settings.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from tessera.datamodules.common import DataError, atomic_write_text
from tessera.datamodules.common import cache_dir as common_cache_dir
from tessera.datamodules.segmentation.io import LabelSpec, read_label_file
from tessera.datamodules.segmentation.layouts import Item


def cache_dir() -> Path:
    return common_cache_dir("label_scan")


@dataclass(frozen=True)
class FileScan:
    """Raw values and sizes of one (image, label) pair."""

    values: tuple[int, ...]
    label_size: tuple[int, int]  # (H, W)
    image_size: tuple[int, int]


def _key(items: Sequence[Item]) -> str:
    digest = hashlib.sha256()
    for _, image, label in items:
        for path in (image, label):
            st = os.stat(path)
            digest.update(f"{Path(path).resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _image_size(path: Path) -> tuple[int, int]:
    try:
        with Image.open(path) as img:
            return img.size[1], img.size[0]
    except FileNotFoundError as err:
        raise DataError(path, "image file not found") from err
    except (OSError, ValueError, SyntaxError) as err:
        raise DataError(path, f"not a readable image ({err})", "re-export the file") from err


def read_scans(items: Sequence[Item], progress: bool = True) -> list[FileScan]:
    """Per-item raw label values and sizes (from the cache when the files are unchanged)."""
    for _, image, label in items:
        for path in (image, label):
            if not Path(path).is_file():
                raise DataError(path, "file not found", "every image needs its label map")
    cache = cache_dir() / f"{_key(items)}.json"
    if cache.is_file():
        try:
            rows = json.loads(cache.read_text())
            return [FileScan(tuple(v), tuple(ls), tuple(im)) for v, ls, im in rows]
        except (ValueError, TypeError):
            pass  # a damaged cache file is rebuilt
    scans = []
    for _, image, label in tqdm(items, desc="scanning label maps", disable=not progress):
        raw = read_label_file(label)
        scans.append(FileScan(tuple(np.unique(raw).tolist()), raw.shape, _image_size(image)))
    try:
        rows = [[list(s.values), list(s.label_size), list(s.image_size)] for s in scans]
        atomic_write_text(cache, json.dumps(rows))
    except OSError:
        pass  # a read-only cache directory only costs the re-scan
    return scans


def _listing(paths: list[Path], limit: int = 3) -> str:
    shown = ", ".join(str(p) for p in paths[:limit])
    return shown + (f" (and {len(paths) - limit} more)" if len(paths) > limit else "")


def scan_labels(
    items: Sequence[Item], spec: LabelSpec, split: str = "", progress: bool = True
) -> dict[str, object]:
    """Check every label map of a split against ``spec``; returns a summary.

    Raises:
        DataError: an empty split; a label set of exactly {0, 255} with no ``label_map``
            (binary masks whose foreground would be ignored); values outside
            ``0..num_classes-1`` and ``ignore_index``; label and image sizes that differ.
    """
    name = f"split {split!r}" if split else "split"
    if not items:
        raise DataError("<dataset>", f"{name} is empty", "check data_root, layout and split")
    labelled = [i for i in items if i[2] is not None]
    scans = read_scans(labelled, progress)
    raw = sorted(set().union(*(s.values for s in scans)))
    if set(raw) == {0, 255} and not spec.label_map:
        raise DataError(
            labelled[0][2],
            f"every label map of {name} holds only the values 0 and 255: with ignore_index "
            f"{spec.ignore_index} as 255 every foreground pixel would be ignored (and an "
            "all-background prediction would score mIoU 1.0)",
            "these are binary masks: set binary: true (or label_map: {255: 1} with num_classes: 2)",
        )
    lut = spec.lut()
    bad_files = [
        (label, sorted(set(np.unique(spec.bad_values(lut[list(s.values)])).tolist())))
        for (_, _, label), s in zip(labelled, scans, strict=True)
        if spec.bad_values(lut[list(s.values)]).size
    ]
    if bad_files:
        values = sorted(set().union(*(set(v) for _, v in bad_files)))
        raise DataError(
            bad_files[0][0],
            f"{len(bad_files)} label maps of {name} have values {values[:8]} outside the "
            f"classes 0..{spec.num_classes - 1} (ignore_index {spec.ignore_index}): "
            f"{_listing([f for f, _ in bad_files])}",
            spec.hint(raw),
        )
    mismatched = [
        (label, s)
        for (_, _, label), s in zip(labelled, scans, strict=True)
        if s.label_size != s.image_size
    ]
    if mismatched:
        label, s = mismatched[0]
        raise DataError(
            label,
            f"{len(mismatched)} label maps of {name} differ in size from their images (first: "
            f"mask {s.label_size[1]}x{s.label_size[0]}, image {s.image_size[1]}x"
            f"{s.image_size[0]} (WxH)): {_listing([m for m, _ in mismatched])}",
            "masks must have exactly the image size",
        )
    return {"items": len(items), "labelled": len(labelled), "raw_values": raw}
