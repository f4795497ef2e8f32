"""One pass over every image a COCO keypoint split references, before training or evaluation.

A split that parses can still fail hours later or score silently wrong: images missing from
``{split}2017/`` (a partial download), files whose header cannot be read, or images whose
size differs from the json's ``width``/``height`` (resized copies: the keypoints are in the
original pixel frame, so every crop would be off). :func:`check_images` finds these up front
(progress bar, sizes read from the image headers without decoding) and raises one
:class:`DataError` naming the files and the fix, or drops them with a warning when asked to.

The label-map scan of segmentation (:mod:`tessera.datamodules.segmentation.scan`) reads label
values of (image, label) pairs; this one reads only image headers against a json, so it is
a separate pass with the same cache convention: what it reads per file (the size, or why
it could not) is cached in ``$TESSERA_CACHE_DIR/image_scan`` (default ``~/.cache/tessera``)
under a key of the annotation file (path, size, mtime), the image folder (path, mtime, which
changes when files are added or removed) and the file names scanned. A re-run reads nothing;
the checks always run with the current settings.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from tessera.datamodules.common import DataError, OnError, atomic_write_text
from tessera.datamodules.common import cache_dir as common_cache_dir

OnSizeMismatch = Literal["raise", "skip", "accept"]
MISSING = "missing"
ZIP_URL = "http://images.cocodataset.org/zips/{split}2017.zip"


def cache_dir() -> Path:
    return common_cache_dir("image_scan")


def _key(annotation_file: Path, image_dir: Path, names: list[str]) -> str:
    ann, folder = os.stat(annotation_file), os.stat(image_dir)
    digest = hashlib.sha256()
    digest.update(f"{annotation_file.resolve()}|{ann.st_size}|{ann.st_mtime_ns}\n".encode())
    digest.update(f"{image_dir.resolve()}|{folder.st_mtime_ns}\n".encode())
    digest.update("\n".join(names).encode())
    return digest.hexdigest()


def header_size(path: Path) -> list[int] | str:
    """``[W, H]`` from the image header (no decode), ``"missing"``, or why it is unreadable."""
    try:
        with Image.open(path) as img:
            return [int(img.size[0]), int(img.size[1])]
    except FileNotFoundError:
        return MISSING
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        return f"unreadable header ({err})"


def read_sizes(
    annotation_file: Path, image_dir: Path, names: Iterable[str], progress: bool = True
) -> dict[str, list[int] | str]:
    """Header size (or ``"missing"``/reason) of each file name, from the cache when unchanged."""
    names = sorted(set(names))
    cache = cache_dir() / f"{_key(annotation_file, image_dir, names)}.json"
    if cache.is_file():
        try:
            sizes = json.loads(cache.read_text())
            if isinstance(sizes, dict) and set(sizes) == set(names):
                return sizes
        except ValueError:
            pass  # a damaged cache file is rebuilt
    sizes = {
        name: header_size(image_dir / name)
        for name in tqdm(names, desc=f"scanning {image_dir.name} images", disable=not progress)
    }
    with contextlib.suppress(OSError):  # a read-only cache directory only costs the re-scan
        atomic_write_text(cache, json.dumps(sizes))
    return sizes


def _listing(paths: list, limit: int = 3) -> str:
    shown = ", ".join(str(p) for p in paths[:limit])
    return shown + (f" (and {len(paths) - limit} more)" if len(paths) > limit else "")


def check_images(
    annotation_file: str | Path,
    images: dict[int, dict],
    image_dir: str | Path,
    split: str,
    on_error: OnError = "raise",
    on_size_mismatch: OnSizeMismatch = "raise",
    progress: bool = True,
) -> set[int]:
    """Check that every image entry exists under ``image_dir`` with the json's size.

    Args:
        annotation_file: the split's ``person_keypoints_*.json`` (named in the errors).
        images: the COCO image entries to check, by id (``file_name``, ``width``, ``height``).
        image_dir: the split's image folder.
        split: split name, for the messages and the download hint.
        on_error: ``raise`` on missing or unreadable images, or ``skip`` them (warning).
        on_size_mismatch: ``raise``, ``skip`` (warning) or ``accept`` images whose header
            size differs from the json's ``width``/``height``.
        progress: show the progress bar.

    Returns:
        The ids of the images dropped (empty unless something is skipped).

    Raises:
        DataError: missing or unreadable images (``on_error="raise"``), size mismatches
            (``on_size_mismatch="raise"``).
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if on_size_mismatch not in ("raise", "skip", "accept"):
        raise ValueError(
            f"on_size_mismatch must be 'raise', 'skip' or 'accept', got {on_size_mismatch!r}"
        )
    annotation_file, image_dir = Path(annotation_file), Path(image_dir)
    sizes = read_sizes(
        annotation_file, image_dir, (i["file_name"] for i in images.values()), progress
    )
    missing, unreadable, mismatched = [], [], []
    for image_id, img in images.items():
        found = sizes[img["file_name"]]
        if found == MISSING:
            missing.append(image_id)
        elif isinstance(found, str):
            unreadable.append((image_id, found))
        elif tuple(found) != (int(img["width"]), int(img["height"])):
            mismatched.append((image_id, tuple(found)))
    dropped: set[int] = set()
    name = f"split {split!r} ({annotation_file.name})"
    if missing:
        paths = [image_dir / images[i]["file_name"] for i in missing]
        problem = f"{len(missing)} of {len(images)} images of {name} are missing: " + _listing(
            paths
        )
        if on_error == "raise":
            raise DataError(
                annotation_file,
                problem,
                f"download the {split}2017 images ({ZIP_URL.format(split=split)}) into "
                f"{image_dir}, or set on_error: skip to drop them",
            )
        warnings.warn(f"{problem}; dropped (on_error: skip)", UserWarning, stacklevel=3)
        dropped.update(missing)
    if unreadable:
        first, reason = unreadable[0]
        paths = [image_dir / images[i]["file_name"] for i, _ in unreadable]
        problem = f"{len(unreadable)} images of {name} cannot be read: {_listing(paths)}"
        if on_error == "raise":
            raise DataError(
                image_dir / images[first]["file_name"],
                f"{reason}; {problem}",
                "re-download them, or set on_error: skip to drop them",
            )
        warnings.warn(f"{problem}; dropped (on_error: skip)", UserWarning, stacklevel=3)
        dropped.update(i for i, _ in unreadable)
    if mismatched and on_size_mismatch != "accept":
        first, (w, h) = mismatched[0]
        img = images[first]
        paths = [image_dir / images[i]["file_name"] for i, _ in mismatched]
        problem = (
            f"{len(mismatched)} images of {name} differ in size from the json's width/height "
            f"(first: json {img['width']}x{img['height']}, file {w}x{h} (WxH)): "
            f"{_listing(paths)}"
        )
        if on_size_mismatch == "raise":
            raise DataError(
                image_dir / img["file_name"],
                problem,
                "the keypoints are in the json's pixel frame: use the original images, or set "
                "on_size_mismatch: skip to drop them (accept to keep them as they are)",
            )
        warnings.warn(f"{problem}; dropped (on_size_mismatch: skip)", UserWarning, stacklevel=3)
        dropped.update(i for i, _ in mismatched)
    return dropped
