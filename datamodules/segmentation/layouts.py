"""Where images and label maps live in the semantic-segmentation datasets, as they ship.

:func:`read_layout` returns a :class:`LayoutSplit`: ``(item_id, image, label | None)`` triples
plus what the layout itself says about its labels (class names, ``reduce_zero_label``, a
value map). ``root`` is the folder the dataset unpacks to:

- ``ade20k`` (``ADEChallengeData2016``): ``images/{training,validation}/ADE_*.jpg`` +
  ``annotations/{training,validation}/ADE_*.png``; 150 classes, 0 = "other" (ignored:
  ``reduce_zero_label``). Splits ``train``/``val`` map to ``training``/``validation``.
- ``cityscapes``: ``leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png`` +
  ``gtFine/<split>/<city>/..._gtFine_labelTrainIds.png`` (19 classes, 255 ignored). When a
  split has only ``..._gtFine_labelIds.png`` (the raw download), those are read and mapped to
  train ids with the official table (:data:`CITYSCAPES_ID_TO_TRAINID`).
- ``voc`` (``VOCdevkit/VOC2012``): ids from ``ImageSets/Segmentation/<split>.txt``, images
  ``JPEGImages/<id>.jpg``, palette PNGs ``SegmentationClass/<id>.png`` (21 classes, 255 =
  object boundary, ignored). With the SBD augmentation converted by mmseg
  (``SegmentationClassAug/<id>.png`` + ``ImageSets/Segmentation/aug.txt``) the ``aug`` split
  reads those; any id without a ``SegmentationClass`` mask falls back to
  ``SegmentationClassAug``.
- ``isic`` (ISIC 2018 task 1): ``ISIC2018_Task1-2_<Split>_Input/ISIC_<id>.jpg`` +
  ``ISIC2018_Task1_<Split>_GroundTruth/ISIC_<id>_segmentation.png`` (0/255: binary),
  ``train/val/test`` = ``Training/Validation/Test``.
- ``mmseg`` (mmsegmentation custom dataset): ``img_dir/<split>/<id><img_suffix>`` +
  ``ann_dir/<split>/<id><seg_map_suffix>``. The image suffix is detected from the files when
  not given; the classes must be declared.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tessera.datamodules.common import DataError

Layout = Literal["mmseg", "ade20k", "cityscapes", "voc", "isic"]
LAYOUTS = ("mmseg", "ade20k", "cityscapes", "voc", "isic")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

Item = tuple[str, Path, Path | None]

# ADE20K SceneParsing objectInfo150 (first name of each class), label value k+1 -> class k.
ADE20K_CLASSES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane",
    "grass", "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant",
    "curtain", "chair", "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror",
    "rug", "field", "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp",
    "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
    "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator",
    "grandstand", "path", "stairs", "runway", "case", "pool table", "pillow", "screen door",
    "stairway", "river", "bridge", "bookcase", "blind", "coffee table", "toilet", "flower",
    "book", "hill", "bench", "countertop", "stove", "palm", "kitchen island", "computer",
    "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus", "towel", "light",
    "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver",
    "airplane", "dirt track", "apparel", "pole", "land", "bannister", "escalator",
    "ottoman", "bottle", "buffet", "poster", "stage", "van", "ship", "fountain",
    "conveyer belt", "canopy", "washer", "plaything", "swimming pool", "stool", "barrel",
    "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball", "food",
    "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle", "lake",
    "dishwasher", "screen", "blanket", "sculpture", "hood", "sconce", "vase",
    "traffic light", "tray", "ashcan", "fan", "pier", "crt screen", "plate", "monitor",
    "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)  # fmt: skip
CITYSCAPES_CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
    "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus",
    "train", "motorcycle", "bicycle",
)  # fmt: skip
# cityscapesScripts helpers/labels.py: label id -> train id (every other id -> 255)
CITYSCAPES_ID_TO_TRAINID = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11,
    25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}  # fmt: skip
VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
ISIC_CLASSES = ("background", "lesion")
ADE20K_SPLITS = {"train": "training", "val": "validation"}
ISIC_SPLITS = {"train": "Training", "val": "Validation", "test": "Test"}


@dataclass
class LayoutSplit:
    """One split of a layout: its items and what the layout fixes about the labels.

    Attributes:
        items: ``(item_id, image, label | None)``; label None when the split has no labels.
        label_dir: the folder labels were expected in (for error messages).
        class_names: the dataset's classes (None for ``mmseg``: declared by the user).
        reduce_zero_label: whether 0 means "other" (ADE20K).
        label_map: raw file value -> class (or ignore) applied when reading, e.g. Cityscapes
            label ids -> train ids; ``default`` is the value of every unlisted id (None =
            unlisted values stay as they are).
        binary: masks are 0/255 foreground masks (ISIC).
    """

    items: list[Item]
    label_dir: Path
    class_names: tuple[str, ...] | None = None
    reduce_zero_label: bool = False
    label_map: dict[int, int] = field(default_factory=dict)
    label_map_default: int | None = None
    binary: bool = False


def _need_dir(path: Path, what: str, fix: str = "check data_root, layout and split") -> Path:
    if not path.is_dir():
        raise DataError(path, f"{what} folder not found", fix)
    return path


def detect_suffix(folder: Path) -> str | None:
    """The one image suffix used in ``folder`` (``.jpg``, ``.png``, ...); None if empty."""
    found = sorted({p.suffix for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES})
    if len(found) > 1:
        raise DataError(
            folder, f"several image suffixes {found} in the image folder", "set img_suffix"
        )
    return found[0] if found else None


def _mmseg(root: Path, split: str, img_suffix: str | None, seg_map_suffix: str) -> LayoutSplit:
    img_dir = _need_dir(root / "img_dir" / split, "image", "the mmseg layout is img_dir/<split>")
    suffix = img_suffix or detect_suffix(img_dir)
    ann_dir = root / "ann_dir" / split
    items = []
    for img in sorted(img_dir.glob(f"*{suffix}")) if suffix else []:
        item_id = img.name[: -len(suffix)]
        label = ann_dir / f"{item_id}{seg_map_suffix}"
        items.append((item_id, img, label if ann_dir.is_dir() else None))
    return LayoutSplit(items, ann_dir)


def _ade20k(root: Path, split: str) -> LayoutSplit:
    name = ADE20K_SPLITS.get(split, split)
    img_dir = _need_dir(root / "images" / name, "ADE20K image", "root must be ADEChallengeData2016")
    ann_dir = root / "annotations" / name
    items = [
        (p.stem, p, ann_dir / f"{p.stem}.png" if ann_dir.is_dir() else None)
        for p in sorted(img_dir.glob("*.jpg"))
    ]
    return LayoutSplit(items, ann_dir, ADE20K_CLASSES, reduce_zero_label=True)


def _cityscapes(root: Path, split: str) -> LayoutSplit:
    img_dir = _need_dir(root / "leftImg8bit" / split, "Cityscapes leftImg8bit/<split>")
    gt_dir = root / "gtFine" / split
    images = sorted(img_dir.glob("*/*_leftImg8bit.png"))
    stems = [(p, p.name[: -len("_leftImg8bit.png")]) for p in images]
    if not gt_dir.is_dir():
        return LayoutSplit([(s, p, None) for p, s in stems], gt_dir, CITYSCAPES_CLASSES)
    train_ids = [gt_dir / p.parent.name / f"{s}_gtFine_labelTrainIds.png" for p, s in stems]
    if all(t.is_file() for t in train_ids):
        items = [(s, p, t) for (p, s), t in zip(stems, train_ids, strict=True)]
        return LayoutSplit(items, gt_dir, CITYSCAPES_CLASSES)
    label_ids = [gt_dir / p.parent.name / f"{s}_gtFine_labelIds.png" for p, s in stems]
    if not all(t.is_file() for t in label_ids):
        missing = next(t for t in train_ids if not t.is_file())
        raise DataError(
            missing,
            "Cityscapes label not found (neither _gtFine_labelTrainIds.png nor _labelIds.png)",
            "unpack gtFine_trainvaltest.zip next to leftImg8bit",
        )
    items = [(s, p, t) for (p, s), t in zip(stems, label_ids, strict=True)]
    return LayoutSplit(
        items, gt_dir, CITYSCAPES_CLASSES, label_map=dict(CITYSCAPES_ID_TO_TRAINID),
        label_map_default=255,
    )  # fmt: skip


def _voc(root: Path, split: str) -> LayoutSplit:
    listing = root / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not listing.is_file():
        raise DataError(listing, "split list not found", "root must be VOCdevkit/VOC2012")
    ids = [line.split()[0] for line in listing.read_text().splitlines() if line.strip()]
    plain, aug = root / "SegmentationClass", root / "SegmentationClassAug"

    def label(i: str) -> Path:
        if split != "aug" and (plain / f"{i}.png").is_file():
            return plain / f"{i}.png"
        return aug / f"{i}.png" if aug.is_dir() else plain / f"{i}.png"

    items = [(i, root / "JPEGImages" / f"{i}.jpg", label(i)) for i in ids]
    return LayoutSplit(items, aug if split == "aug" else plain, VOC_CLASSES)


def _isic(root: Path, split: str) -> LayoutSplit:
    if split not in ISIC_SPLITS:
        raise DataError(root, f"ISIC has no split {split!r}", f"use one of {list(ISIC_SPLITS)}")
    name = ISIC_SPLITS[split]
    img_dir = _need_dir(root / f"ISIC2018_Task1-2_{name}_Input", "ISIC input")
    gt_dir = root / f"ISIC2018_Task1_{name}_GroundTruth"
    items = [
        (img.stem, img, gt_dir / f"{img.stem}_segmentation.png" if gt_dir.is_dir() else None)
        for img in sorted(img_dir.glob("*.jpg"))
    ]
    return LayoutSplit(items, gt_dir, ISIC_CLASSES, binary=True)


READERS: dict[str, Callable[..., LayoutSplit]] = {
    "ade20k": _ade20k,
    "cityscapes": _cityscapes,
    "voc": _voc,
    "isic": _isic,
}


def read_layout(
    root: str | Path,
    split: str,
    layout: Layout = "mmseg",
    img_suffix: str | None = None,
    seg_map_suffix: str = ".png",
) -> LayoutSplit:
    """The items of ``split`` in ``layout`` (see the module docstring).

    Raises:
        DataError: a missing folder/listing, or a split without any image.
    """
    root = Path(root)
    if layout == "mmseg":
        found = _mmseg(root, split, img_suffix, seg_map_suffix)
    elif layout in READERS:
        found = READERS[layout](root, split)
    else:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if not found.items:
        raise DataError(root, f"split {split!r} is empty: no images found in the {layout} layout")
    return found


def list_items(
    root: str | Path,
    split: str,
    layout: Layout = "mmseg",
    img_suffix: str | None = None,
    seg_map_suffix: str = ".png",
) -> list[Item]:
    """All ``(item_id, image, label)`` of ``split`` in ``layout`` (label None if absent)."""
    return read_layout(root, split, layout, img_suffix, seg_map_suffix).items


def list_folder(folder: str | Path) -> list[Item]:
    """Every image directly inside ``folder`` (prediction on unlabeled images)."""
    folder = _need_dir(Path(folder), "image")
    items = [
        (p.stem, p, None) for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not items:
        raise DataError(folder, f"no images ({', '.join(IMAGE_SUFFIXES)}) in the folder")
    return items
