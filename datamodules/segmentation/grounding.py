"""Text-conditioned segmentation annotations: VizWiz-VQA-Grounding and RefCOCO(+/g, gRefCOCO).

Each reader returns :class:`GroundingItem` s (image path, text, how to get the mask).

- VizWiz-VQA-Grounding (layout of the public loaders): ``<split>_grounding.json`` is a dict
  keyed by image file name with ``question``, ``answers`` (and ``most_common_answer``...);
  images are ``<split>/<name>`` and masks ``binary_masks_png/<split>/<stem>.png`` (0/255).
- RefCOCO family (``lichengunc/refer``): ``<dataset>/refs(<splitBy>).p`` is a pickled list of
  refs ``{ref_id, ann_id, image_id, split, sentences: [{sent, sent_id, ...}]}`` and
  ``<dataset>/instances.json`` is COCO with polygon or RLE masks. One item per sentence. As in
  gRefCOCO, ``ann_id`` may be a list (union of objects) and ``-1`` means "no target".
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, field
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


def _check_text(source: Path, item_id: str, text: object) -> str:
    if not isinstance(text, str) or not text.strip():
        raise DataError(source, f"item {item_id!r} has an empty question/expression")
    return text.strip()


def read_vizwiz(root: str | Path, split: str, require_masks: bool = True) -> list[GroundingItem]:
    """Items of ``<root>/<split>_grounding.json`` (see module docstring for the layout)."""
    root = Path(root)
    path = root / f"{split}_grounding.json"
    try:
        records = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise DataError(path, "grounding annotation file not found") from err
    except json.JSONDecodeError as err:
        raise DataError(path, f"not valid JSON ({err})") from err
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
            raise DataError(mask, "mask for this image is missing", "masks are 0/255 PNGs")
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


def read_refcoco(
    root: str | Path,
    split: str,
    dataset: str = "refcoco",
    split_by: str = "unc",
    image_root: str | Path | None = None,
) -> list[GroundingItem]:
    """One item per referring sentence of ``split`` (``root`` holds ``<dataset>/``).

    Args:
        root: folder containing ``<dataset>/refs(<split_by>).p`` and ``instances.json``.
        split: ref split (``train``, ``val``, ``testA``, ``testB``, ``test``).
        image_root: folder of the COCO images (default ``<root>/images``).
    """
    root = Path(root)
    image_root = Path(image_root) if image_root else root / "images"
    refs_path = root / dataset / f"refs({split_by}).p"
    refs = load_refs(refs_path)
    inst_path = root / dataset / "instances.json"
    try:
        instances = json.loads(inst_path.read_text())
    except FileNotFoundError as err:
        raise DataError(inst_path, "COCO instances file not found") from err
    except json.JSONDecodeError as err:
        raise DataError(inst_path, f"not valid JSON ({err})") from err
    images = {img["id"]: img for img in instances.get("images", [])}
    anns = {ann["id"]: ann for ann in instances.get("annotations", [])}
    items = []
    for ref in refs:
        if ref.get("split") != split:
            continue
        image = images.get(ref["image_id"])
        if image is None:
            raise DataError(inst_path, f"ref {ref['ref_id']} names unknown image {ref['image_id']}")
        ann_ids = ref["ann_id"] if isinstance(ref["ann_id"], list) else [ref["ann_id"]]
        segms = []
        for ann_id in ann_ids:
            if ann_id == -1:
                continue
            if ann_id not in anns:
                raise DataError(inst_path, f"ref {ref['ref_id']} names unknown annotation {ann_id}")
            segms.append(anns[ann_id]["segmentation"])
        for sent in ref["sentences"]:
            item_id = f"{ref['ref_id']}_{sent['sent_id']}"
            text = _check_text(refs_path, item_id, sent.get("sent") or sent.get("raw"))
            items.append(
                GroundingItem(item_id, image_root / image["file_name"], text, None, tuple(segms))
            )
    if not items:
        raise DataError(refs_path, f"no refs in split {split!r}")
    return items


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
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as err:
        raise DataError(path, "pairs file not found") from err
    except json.JSONDecodeError as err:
        raise DataError(path, f"not valid JSON ({err})") from err
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
