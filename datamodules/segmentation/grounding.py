"""Text-conditioned segmentation annotations: VizWiz-VQA-Grounding, RefCOCO/+/g, gRefCOCO.

Each reader returns :class:`GroundingItem` s (image path, text, how to get the mask).

- VizWiz-VQA-Grounding (as released): per-split image folders ``<split>/VizWiz_<split>_*.jpg``,
  per-split ``<split>_grounding.json`` (a dict keyed by image file name with ``question``,
  ``answers``, ``most_common_answer``, ``height``, ``width``...) and masks
  ``binary_masks_png/<split>/<stem>.png``. The test split ships without masks (predict only).
  Masks stored as 0/255, 0/1, 1-bit or RGB images are all binarised.
- RefCOCO / RefCOCO+ / RefCOCOg as ``lichengunc/refer`` lays them out under its data root:
  ``<dataset>/refs(<splitBy>).p`` (a pickled list of refs ``{ref_id, ann_id, image_id, split,
  sentences: [{sent, sent_id, ...}]}``), ``<dataset>/instances.json`` (COCO, polygon or RLE
  masks) and the COCO images in ``images/mscoco/images/train2014`` (refer's ``IMAGE_DIR``).
  Splits: ``unc`` -> train/val/testA/testB, ``umd`` -> train/val/test. One item per sentence.
- gRefCOCO (Liu et al., CVPR 2023, ``henghuiding/gRefCOCO``): ``grefcoco/grefs(unc).json``
  (refs as above, ``ann_id`` a list, ``[-1]`` / ``no_target: true`` for expressions that
  match nothing) + ``grefcoco/instances.json``, images ``images/train2014``.

``instances.json`` is parsed once per process (cached by path and mtime).
"""

from __future__ import annotations

import json
import os
import pickle
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from tessera.datamodules.common import DataError


@dataclass(frozen=True)
class GroundingItem:
    """One (image, text) pair and where its target mask comes from.

    Either ``mask_path`` (a 0/255 PNG) or COCO ``segmentations`` (list of polygon/RLE
    objects, empty list = no target) describes the mask; neither means "no reference".
    """

    item_id: str
    image: Path
    text: str
    mask_path: Path | None = None
    segmentations: tuple = field(default=())
    has_mask: bool = True


def _read_json(path: Path, what: str):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as err:
        raise DataError(path, f"{what} not found") from err
    except json.JSONDecodeError as err:
        raise DataError(path, f"not valid JSON ({err})") from err


def _check_text(source: Path, item_id: str, text: object) -> str:
    if not isinstance(text, str) or not text.strip():
        raise DataError(source, f"item {item_id!r} has an empty question/expression")
    return text.strip()


def read_vizwiz(
    root: str | Path, split: str, require_masks: bool | None = None
) -> list[GroundingItem]:
    """Items of ``<root>/<split>_grounding.json`` (see module docstring for the layout).

    Args:
        require_masks: a missing mask is an error (default: except for the ``test`` split,
            which ships without masks; its items carry no reference).
    """
    if require_masks is None:
        require_masks = split != "test"
    root = Path(root)
    path = root / f"{split}_grounding.json"
    records = _read_json(path, "grounding annotation file")
    if not isinstance(records, dict):
        raise DataError(path, "expected a JSON object keyed by image file name")
    items = []
    for name, record in sorted(records.items()):
        if not isinstance(record, dict):
            raise DataError(path, f"entry {name!r} is not an object with a 'question'")
        text = _check_text(path, name, record.get("question"))
        mask = root / "binary_masks_png" / split / f"{Path(name).stem}.png"
        has_mask = mask.is_file()
        if require_masks and not has_mask:
            raise DataError(
                mask,
                "mask for this image is missing",
                "unpack binary_masks_png next to the split folders (the test split has none: "
                "predict it instead)",
            )
        items.append(GroundingItem(Path(name).stem, root / split / name, text, mask, (), has_mask))
    return items


class _PlainDataUnpickler(pickle.Unpickler):
    """Unpickles only plain containers and scalars: a refs file can run no code."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a refs file")


def load_refs(path: str | Path) -> list[dict]:
    """The list of refs in a ``refs(unc).p``-style pickle, loaded without executing code."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            refs = _PlainDataUnpickler(f).load()
    except FileNotFoundError as err:
        raise DataError(path, "refs file not found") from err
    except (pickle.UnpicklingError, EOFError, ValueError) as err:
        raise DataError(path, f"not a plain refs pickle ({err})") from err
    if not isinstance(refs, list):
        raise DataError(path, "expected a pickled list of refs")
    return refs


@lru_cache(maxsize=4)
def _instances(path: str, mtime_ns: int) -> tuple[dict, dict]:
    try:
        instances = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise DataError(path, f"not valid JSON ({err})") from err
    images = {img["id"]: img for img in instances.get("images", [])}
    anns = {ann["id"]: ann for ann in instances.get("annotations", [])}
    return images, anns


def load_instances(path: str | Path) -> tuple[dict, dict]:
    """(images by id, annotations by id) of a COCO ``instances.json``, parsed once."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "COCO instances file not found")
    return _instances(str(path.resolve()), os.stat(path).st_mtime_ns)


def _refs_items(
    refs: list[dict], split: str, refs_path: Path, inst_path: Path, image_root: Path
) -> list[GroundingItem]:
    images, anns = load_instances(inst_path)
    items = []
    for ref in refs:
        if ref.get("split") != split:
            continue
        image = images.get(ref["image_id"])
        if image is None:
            raise DataError(inst_path, f"ref {ref['ref_id']} names unknown image {ref['image_id']}")
        ann_ids = ref["ann_id"] if isinstance(ref["ann_id"], list) else [ref["ann_id"]]
        segms = []
        if not ref.get("no_target", False):
            for ann_id in ann_ids:
                if ann_id == -1:
                    continue
                if ann_id not in anns:
                    raise DataError(
                        inst_path, f"ref {ref['ref_id']} names unknown annotation {ann_id}"
                    )
                segms.append(anns[ann_id]["segmentation"])
        for sent in ref["sentences"]:
            item_id = f"{ref['ref_id']}_{sent['sent_id']}"
            text = _check_text(refs_path, item_id, sent.get("sent") or sent.get("raw"))
            items.append(
                GroundingItem(item_id, image_root / image["file_name"], text, None, tuple(segms))
            )
    if not items:
        splits = sorted({str(r.get("split")) for r in refs})
        raise DataError(refs_path, f"no refs in split {split!r}", f"its splits are {splits}")
    return items


def read_refcoco(
    root: str | Path,
    split: str,
    dataset: str = "refcoco",
    split_by: str = "unc",
    image_root: str | Path | None = None,
) -> list[GroundingItem]:
    """One item per referring sentence of ``split`` (``root`` is refer's data root).

    Args:
        root: folder containing ``<dataset>/refs(<split_by>).p`` and ``instances.json``.
        split: ref split (``train``, ``val``, ``testA``, ``testB`` (unc), ``test`` (umd)).
        dataset: ``refcoco``, ``refcoco+`` or ``refcocog``.
        split_by: ``unc`` (RefCOCO, RefCOCO+), ``umd`` or ``google`` (RefCOCOg).
        image_root: COCO train2014 images (default ``<root>/images/mscoco/images/train2014``).
    """
    root = Path(root)
    image_root = (
        Path(image_root) if image_root else root / "images" / "mscoco" / "images" / "train2014"
    )
    refs_path = root / dataset / f"refs({split_by}).p"
    return _refs_items(
        load_refs(refs_path), split, refs_path, root / dataset / "instances.json", image_root
    )


def read_grefcoco(
    root: str | Path,
    split: str,
    split_by: str = "unc",
    image_root: str | Path | None = None,
) -> list[GroundingItem]:
    """gRefCOCO: one item per sentence of ``grefcoco/grefs(<split_by>).json`` in ``split``
    (train/val/testA/testB); no-target expressions have an empty mask.

    Args:
        root: folder containing ``grefcoco/`` (and ``images/train2014``).
        image_root: COCO train2014 images (default ``<root>/images/train2014``).
    """
    root = Path(root)
    image_root = Path(image_root) if image_root else root / "images" / "train2014"
    refs_path = root / "grefcoco" / f"grefs({split_by}).json"
    refs = _read_json(refs_path, "gRefCOCO refs file")
    if not isinstance(refs, list):
        raise DataError(refs_path, "expected a JSON list of refs")
    return _refs_items(refs, split, refs_path, root / "grefcoco" / "instances.json", image_root)


def coco_mask(segmentations: tuple, height: int, width: int) -> np.ndarray:
    """Union of COCO polygon / RLE segmentations as an ``(H, W)`` 0/1 int64 mask."""
    from pycocotools import mask as mask_utils

    out = np.zeros((height, width), dtype=np.uint8)
    for segm in segmentations:
        if isinstance(segm, list):  # polygons
            rle = mask_utils.merge(mask_utils.frPyObjects(segm, height, width))
        elif isinstance(segm.get("counts"), list):  # uncompressed RLE
            rle = mask_utils.frPyObjects(segm, height, width)
        else:
            rle = dict(segm)
            if isinstance(rle["counts"], str):
                rle["counts"] = rle["counts"].encode()
        out |= mask_utils.decode(rle).astype(np.uint8)
    return out.astype(np.int64)


def read_pairs(path: str | Path) -> list[GroundingItem]:
    """(image, question) pairs for batch prediction.

    Accepts a JSON list of ``{"image": path, "question": text[, "id": name]}`` (image paths
    relative to the JSON file) or a VizWiz-style dict ``{image_name: {"question": ...}}``.
    """
    path = Path(path)
    data = _read_json(path, "pairs file")
    if isinstance(data, dict):
        data = [{"image": k, **v} for k, v in sorted(data.items()) if isinstance(v, dict)]
    items = []
    for n, entry in enumerate(data):
        if not isinstance(entry, dict) or "image" not in entry:
            raise DataError(path, f"entry {n} needs an 'image' and a 'question'")
        image = path.parent / entry["image"]
        item_id = str(entry.get("id") or f"{n:05d}_{Path(entry['image']).stem}")
        text = _check_text(path, item_id, entry.get("question"))
        items.append(GroundingItem(item_id, image, text, None, (), False))
    return items
