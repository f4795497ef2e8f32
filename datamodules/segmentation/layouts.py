"""Where images and label maps live in the common semantic-segmentation layouts.

Each function returns ``(item_id, image_path, label_path | None)`` triples for one split:

- ``mmseg``: ``img_dir/<split>/<id><img_suffix>`` + ``ann_dir/<split>/<id><seg_map_suffix>``
  (mmsegmentation custom-dataset layout; Synapse, converted Cityscapes, ...).
- ``voc``: ``JPEGImages/<id>.jpg`` + ``SegmentationClass/<id>.png`` listed in
  ``ImageSets/Segmentation/<split>.txt`` (``root`` is ``VOCdevkit/VOC2012``).
- ``isic``: ISIC 2018 task 1, ``ISIC2018_Task1-2_<Split>_Input/<id>.jpg`` +
  ``ISIC2018_Task1_<Split>_GroundTruth/<id>_segmentation.png`` (binary 0/255), with
  ``train/val/test`` mapped to ``Training/Validation/Test``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from tessera.datamodules.common import DataError

Layout = Literal["mmseg", "voc", "isic"]
LAYOUTS = ("mmseg", "voc", "isic")
ISIC_SPLITS = {"train": "Training", "val": "Validation", "test": "Test"}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

Item = tuple[str, Path, Path | None]


def _need_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DataError(path, f"{what} folder not found", "check data_root, layout and split")
    return path


def _mmseg(root: Path, split: str, img_suffix: str, seg_map_suffix: str) -> list[Item]:
    img_dir = _need_dir(root / "img_dir" / split, "image")
    ann_dir = root / "ann_dir" / split
    items = []
    for img in sorted(img_dir.glob(f"*{img_suffix}")):
        item_id = img.name[: -len(img_suffix)]
        label = ann_dir / f"{item_id}{seg_map_suffix}"
        items.append((item_id, img, label if ann_dir.is_dir() else None))
    return items


def _voc(root: Path, split: str) -> list[Item]:
    listing = root / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not listing.is_file():
        raise DataError(listing, "split list not found", "root must be VOCdevkit/VOC2012")
    ids = [line.split()[0] for line in listing.read_text().splitlines() if line.strip()]
    return [
        (i, root / "JPEGImages" / f"{i}.jpg", root / "SegmentationClass" / f"{i}.png") for i in ids
    ]


def _isic(root: Path, split: str) -> list[Item]:
    if split not in ISIC_SPLITS:
        raise DataError(root, f"ISIC has no split {split!r}", f"use one of {list(ISIC_SPLITS)}")
    name = ISIC_SPLITS[split]
    img_dir = _need_dir(root / f"ISIC2018_Task1-2_{name}_Input", "ISIC input")
    gt_dir = root / f"ISIC2018_Task1_{name}_GroundTruth"
    return [
        (img.stem, img, gt_dir / f"{img.stem}_segmentation.png" if gt_dir.is_dir() else None)
        for img in sorted(img_dir.glob("*.jpg"))
    ]


def list_items(
    root: str | Path,
    split: str,
    layout: Layout = "mmseg",
    img_suffix: str = ".png",
    seg_map_suffix: str = ".png",
) -> list[Item]:
    """All ``(item_id, image, label)`` of ``split`` in ``layout`` (label None if absent)."""
    root = Path(root)
    if layout == "mmseg":
        items = _mmseg(root, split, img_suffix, seg_map_suffix)
    elif layout == "voc":
        items = _voc(root, split)
    elif layout == "isic":
        items = _isic(root, split)
    else:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if not items:
        raise DataError(root, f"no images found for split {split!r} in the {layout} layout")
    return items


def list_folder(folder: str | Path) -> list[Item]:
    """Every image directly inside ``folder`` (prediction on unlabeled images)."""
    folder = _need_dir(Path(folder), "image")
    items = [
        (p.stem, p, None) for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not items:
        raise DataError(folder, f"no images ({', '.join(IMAGE_SUFFIXES)}) in the folder")
    return items
