"""Segmentation datasets in the layouts they ship in, a few tiny items each.

Written from each dataset's own documentation (folder and file names, split names, label
encodings), not from the synthetic world:

- ADE20K SceneParsing (``ADEChallengeData2016.zip``, http://sceneparsing.csail.mit.edu/):
  ``images/{training,validation}/ADE_{train,val}_%08d.jpg`` and
  ``annotations/{training,validation}/...png``, 8-bit grayscale, 0 = other, 1..150 classes.
- Cityscapes (``leftImg8bit_trainvaltest.zip``, ``gtFine_trainvaltest.zip``, cityscapesScripts
  README): ``leftImg8bit/<split>/<city>/<city>_<seq:06d>_<frame:06d>_leftImg8bit.png`` and
  ``gtFine/<split>/<city>/<stem>_gtFine_{labelIds,instanceIds,color}.png`` +
  ``_gtFine_polygons.json``; ``_gtFine_labelTrainIds.png`` only after
  ``createTrainIdLabelImgs`` (or mmseg's ``tools/dataset_converters/cityscapes.py``).
- Pascal VOC 2012 devkit: ``VOCdevkit/VOC2012/{JPEGImages,SegmentationClass,ImageSets/
  Segmentation}``; ``SegmentationClass`` PNGs are palette ("P") images, 255 on object
  boundaries; the SBD augmentation as mmseg's ``voc_aug.py`` converts it:
  ``SegmentationClassAug/<id>.png`` (grayscale) + ``ImageSets/Segmentation/aug.txt``.
- mmsegmentation custom dataset (``docs/en/advanced_guides/add_datasets.md``):
  ``img_dir/{train,val}/<id>.jpg`` + ``ann_dir/{train,val}/<id>.png``.
- ISIC 2018 task 1 (https://challenge.isic-archive.com/data/#2018):
  ``ISIC2018_Task1-2_{Training,Validation,Test}_Input/ISIC_%07d.jpg`` (+ ``ATTRIBUTION.txt``,
  ``LICENSE.txt``), ``ISIC2018_Task1_{Training,Validation}_GroundTruth/ISIC_%07d_segmentation.png``
  (0/255).
- VizWiz-VQA-Grounding (https://vizwiz.org/tasks-and-datasets/answer-grounding-for-vqa/):
  ``{train,val,test}/VizWiz_<split>_%08d.jpg``, ``<split>_grounding.json`` keyed by image
  name (``question``, ``answers``, ``most_common_answer``, ``height``, ``width``), masks
  ``binary_masks_png/{train,val}/<stem>.png``; no test masks.
- RefCOCO / RefCOCO+ / RefCOCOg (``lichengunc/refer`` README): ``<data>/<dataset>/
  refs(<splitBy>).p`` (pickled list of refs with ``file_name`` = ``COCO_train2014_<image>_
  <ann>.jpg``), ``<data>/<dataset>/instances.json`` (COCO, polygons), images in
  ``<data>/images/mscoco/images/train2014/COCO_train2014_%012d.jpg``.
- gRefCOCO (``henghuiding/gRefCOCO`` / ReLA README): ``grefcoco/grefs(unc).json`` (refs with
  ``ann_id`` lists, ``[-1]`` + ``no_target: true`` for no-target expressions) +
  ``grefcoco/instances.json``, images ``images/train2014``.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

from tessera.datamodules.segmentation.io import palette  # VOC colour map (colours only)

CITYSCAPES_LABEL_IDS = (7, 8, 11, 26)  # road, sidewalk, building, car (train ids 0, 1, 2, 13)
CITYSCAPES_TRAIN_IDS = {7: 0, 8: 1, 11: 2, 26: 13}


def _scene(rng: np.random.Generator, h: int, w: int, values: list[int]) -> np.ndarray:
    """A label map of a few rectangles drawn from ``values`` on ``values[0]``."""
    label = np.full((h, w), values[0], np.uint8)
    for v in rng.choice(values[1:], size=min(3, len(values) - 1), replace=False):
        y0, x0 = int(rng.integers(0, h // 2)), int(rng.integers(0, w // 2))
        y1, x1 = (
            y0 + int(rng.integers(h // 4, h // 2 + 1)),
            x0 + int(rng.integers(w // 4, w // 2 + 1)),
        )
        label[y0:y1, x0:x1] = v
    return label


def _image(rng: np.random.Generator, label: np.ndarray) -> np.ndarray:
    """An RGB image whose colour follows the label (so a model can learn it)."""
    colours = np.random.default_rng(1).integers(30, 225, size=(256, 3))
    image = colours[label] + rng.normal(0, 8, size=(*label.shape, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def _save(path: Path, array: np.ndarray, mode: str | None = None, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path, **kwargs)
    return path


def write_ade20k(root: Path, n_train: int = 3, n_val: int = 2, size=(24, 32), seed=0) -> Path:
    """``root/ADEChallengeData2016`` (returned); labels 0 (other) and a few of 1..150."""
    out = Path(root) / "ADEChallengeData2016"
    rng = np.random.default_rng(seed)
    for split, prefix, n in (("training", "train", n_train), ("validation", "val", n_val)):
        for i in range(1, n + 1):
            h, w = size[0] + 4 * i, size[1]  # sizes differ between images
            label = _scene(rng, h, w, [0, 1, 3, 13, 150])
            stem = f"ADE_{prefix}_{i:08d}"
            _save(out / "images" / split / f"{stem}.jpg", _image(rng, label), quality=95)
            _save(out / "annotations" / split / f"{stem}.png", label, "L")
    return out


def write_cityscapes(root: Path, train_ids: bool = True, n: int = 2, size=(16, 32), seed=0) -> Path:
    """``root/cityscapes`` (returned), cities aachen (train), frankfurt (val), berlin
    (test: labels all 0, as released). ``train_ids=False``: the raw download, without
    ``_gtFine_labelTrainIds.png``."""
    out = Path(root) / "cityscapes"
    rng = np.random.default_rng(seed)
    for split, city in (("train", "aachen"), ("val", "frankfurt"), ("test", "berlin")):
        for i in range(n):
            stem = f"{city}_{i:06d}_{19 + i:06d}"
            ids = _scene(rng, *size, [0, *CITYSCAPES_LABEL_IDS])
            if split == "test":
                ids[:] = 0
            _save(out / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", _image(rng, ids))
            gt = out / "gtFine" / split / city
            _save(gt / f"{stem}_gtFine_labelIds.png", ids, "L")
            _save(gt / f"{stem}_gtFine_instanceIds.png", ids.astype(np.int32) * 1000, "I")
            _save(gt / f"{stem}_gtFine_color.png", _image(rng, ids))
            (gt / f"{stem}_gtFine_polygons.json").write_text(
                json.dumps({"imgHeight": size[0], "imgWidth": size[1], "objects": []})
            )
            if train_ids:
                lut = np.full(256, 255, np.uint8)
                for k, v in CITYSCAPES_TRAIN_IDS.items():
                    lut[k] = v
                _save(gt / f"{stem}_gtFine_labelTrainIds.png", lut[ids], "L")
    return out


def write_voc(root: Path, aug: bool = False, size=(20, 28), seed=0) -> Path:
    """``root/VOCdevkit/VOC2012`` (returned): train 2 ids, val 2 ids, palette labels with a
    255 boundary; ``aug``: 2 more SBD ids in ``SegmentationClassAug`` and ``aug.txt``."""
    out = Path(root) / "VOCdevkit" / "VOC2012"
    rng = np.random.default_rng(seed)
    splits = {"train": ["2007_000032", "2007_000039"], "val": ["2007_000033", "2007_000042"]}
    for ids in splits.values():
        for i in ids:
            label = _scene(rng, *size, [0, 1, 15, 20])
            label[0, :] = 255  # object boundary / difficult
            _save(out / "JPEGImages" / f"{i}.jpg", _image(rng, label), quality=95)
            img = Image.fromarray(label, mode="P")
            img.putpalette(palette().reshape(-1).tolist())
            (out / "SegmentationClass").mkdir(parents=True, exist_ok=True)
            img.save(out / "SegmentationClass" / f"{i}.png")
    listing = out / "ImageSets" / "Segmentation"
    listing.mkdir(parents=True, exist_ok=True)
    for split, ids in splits.items():
        (listing / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    (listing / "trainval.txt").write_text("".join(f"{i}\n" for s in splits.values() for i in s))
    if aug:
        extra = ["2008_000002", "2008_000003"]
        for i in [*splits["train"], *extra]:
            label = _scene(rng, *size, [0, 2, 7])
            _save(out / "SegmentationClassAug" / f"{i}.png", label, "L")
            if i in extra:
                _save(out / "JPEGImages" / f"{i}.jpg", _image(rng, label), quality=95)
        (listing / "aug.txt").write_text("".join(f"{i}\n" for i in [*splits["train"], *extra]))
    return out


def write_mmseg_custom(
    root: Path, binary: bool = False, img_suffix: str = ".jpg", size=(24, 24), seed=0
) -> Path:
    """``root`` with ``img_dir``/``ann_dir`` (train 3, val 2); ``binary``: 0/255 masks."""
    out = Path(root)
    rng = np.random.default_rng(seed)
    for split, n in (("train", 3), ("val", 2)):
        for i in range(n):
            label = _scene(rng, *size, [0, 255] if binary else [0, 1, 2])
            image = _image(rng, label)
            _save(out / "img_dir" / split / f"{split}_{i:03d}{img_suffix}", image)
            _save(out / "ann_dir" / split / f"{split}_{i:03d}.png", label, "L")
    return out


def write_isic(root: Path, size=(20, 30), seed=0) -> Path:
    """``root`` with ISIC 2018 task 1 training/validation (0/255 masks) and test inputs."""
    out = Path(root)
    rng = np.random.default_rng(seed)
    ids = {"Training": [0, 1, 3], "Validation": [12, 15], "Test": [36]}
    for split, numbers in ids.items():
        inputs = out / f"ISIC2018_Task1-2_{split}_Input"
        for k in numbers:
            mask = _scene(rng, *size, [0, 255])
            _save(inputs / f"ISIC_{k:07d}.jpg", _image(rng, mask), quality=95)
            if split != "Test":
                gt = out / f"ISIC2018_Task1_{split}_GroundTruth"
                _save(gt / f"ISIC_{k:07d}_segmentation.png", mask, "L")
        (inputs / "ATTRIBUTION.txt").write_text("ISIC archive\n")
        (inputs / "LICENSE.txt").write_text("CC-0\n")
    return out


def write_vizwiz(root: Path, size=(24, 32), seed=0) -> Path:
    """``root`` with VizWiz-VQA-Grounding train 3 / val 2 / test 2; one train mask is stored
    as RGB and one as a 1-bit image (both occur in third-party re-exports)."""
    out = Path(root)
    rng = np.random.default_rng(seed)
    questions = ["What is this?", "What colour is this shirt?", "Which flavour is this can?"]
    for split, n in (("train", 3), ("val", 2), ("test", 2)):
        records = {}
        for i in range(n):
            name = f"VizWiz_{split}_{i:08d}.jpg"
            h, w = size[0] + 2 * i, size[1]
            mask = _scene(rng, h, w, [0, 255])
            _save(out / split / name, _image(rng, mask), quality=95)
            record = {"question": questions[i % 3], "height": h, "width": w}
            if split != "test":
                record |= {"answers": ["soup"] * 10, "most_common_answer": "soup"}
                path = out / "binary_masks_png" / split / f"{Path(name).stem}.png"
                if split == "train" and i == 1:
                    _save(path, np.repeat(mask[..., None], 3, axis=-1))
                elif split == "train" and i == 2:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(mask, "L").convert("1").save(path)
                else:
                    _save(path, mask, "L")
            records[name] = record
        (out / f"{split}_grounding.json").write_text(json.dumps(records))
    return out


def _coco(rng, image_dir: Path, n_images: int, size=(24, 32)) -> tuple[dict, list[dict]]:
    """COCO instances (two polygon objects per image) and the images in ``image_dir``."""
    h, w = size
    instances = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "cat"}]}
    for k in range(n_images):
        image_id = 9 + k
        name = f"COCO_train2014_{image_id:012d}.jpg"
        label = np.zeros((h, w), np.uint8)
        boxes = [(2, 2, w // 2, h // 2), (w // 2 + 2, h // 2, w - 2, h - 2)]
        for n, (x0, y0, x1, y1) in enumerate(boxes):
            label[y0:y1, x0:x1] = n + 1
            polygon = [float(v) for v in (x0, y0, x1, y0, x1, y1, x0, y1)]
            instances["annotations"].append(
                {
                    "id": 100 * image_id + n,
                    "image_id": image_id,
                    "category_id": 1,
                    "segmentation": [polygon],
                    "area": float((x1 - x0) * (y1 - y0)),
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "iscrowd": 0,
                }
            )
        instances["images"].append({"id": image_id, "file_name": name, "height": h, "width": w})
        _save(image_dir / name, _image(rng, label), quality=95)
    return instances, instances["annotations"]


def _sentence(sent_id: int, text: str) -> dict:
    return {"raw": text, "sent": text, "sent_id": sent_id, "tokens": text.split()}


REFCOCO_SPLITS = {"unc": ("train", "val", "testA", "testB"), "umd": ("train", "val", "test")}


def write_refcoco(root: Path, dataset: str = "refcoco", split_by: str = "unc", seed=0) -> Path:
    """refer's data root (returned): ``<dataset>/refs(<split_by>).p``, ``<dataset>/
    instances.json``, ``images/mscoco/images/train2014``; two images per split, two refs of
    one and two sentences each."""
    out = Path(root)
    rng = np.random.default_rng(seed)
    splits = REFCOCO_SPLITS[split_by]
    image_dir = out / "images" / "mscoco" / "images" / "train2014"
    instances, anns = _coco(rng, image_dir, 2 * len(splits))
    refs, sent_id = [], 0
    words = {0: ["left cat", "the cat on the left"], 1: ["right cat"]}
    for k, split in enumerate(s for s in splits for _ in range(2)):
        image = instances["images"][k]
        for n in (0, 1):
            ann = anns[2 * k + n]
            sents = []
            for text in words[n]:
                sents.append(_sentence(sent_id, text))
                sent_id += 1
            refs.append(
                {
                    "sent_ids": [s["sent_id"] for s in sents],
                    "file_name": f"{Path(image['file_name']).stem}_{ann['id']}.jpg",
                    "ann_id": ann["id"],
                    "ref_id": len(refs),
                    "image_id": image["id"],
                    "split": split,
                    "sentences": sents,
                    "category_id": 1,
                }
            )
    (out / dataset).mkdir(parents=True, exist_ok=True)
    (out / dataset / f"refs({split_by}).p").write_bytes(pickle.dumps(refs, protocol=2))
    (out / dataset / "instances.json").write_text(json.dumps(instances))
    return out


def write_grefcoco(root: Path, seed=0) -> Path:
    """``root`` with ``grefcoco/grefs(unc).json`` + ``instances.json`` and
    ``images/train2014``: two images per split, each with a one-object ref, a two-object
    ref and a no-target ref."""
    out = Path(root)
    rng = np.random.default_rng(seed)
    splits = REFCOCO_SPLITS["unc"]
    instances, anns = _coco(rng, out / "images" / "train2014", 2 * len(splits))
    refs, sent_id = [], 0
    for k, split in enumerate(s for s in splits for _ in range(2)):
        image = instances["images"][k]
        targets = {
            "left cat": [anns[2 * k]["id"]],
            "both cats": [anns[2 * k]["id"], anns[2 * k + 1]["id"]],
            "the dog": [-1],
        }
        for text, ann_ids in targets.items():
            refs.append(
                {
                    "ref_id": len(refs),
                    "image_id": image["id"],
                    "ann_id": ann_ids,
                    "category_id": [1] if ann_ids != [-1] else [-1],
                    "split": split,
                    "file_name": image["file_name"],
                    "sent_ids": [sent_id],
                    "sentences": [_sentence(sent_id, text)],
                    "no_target": ann_ids == [-1],
                }
            )
            sent_id += 1
    (out / "grefcoco").mkdir(parents=True, exist_ok=True)
    (out / "grefcoco" / "grefs(unc).json").write_text(json.dumps(refs))
    (out / "grefcoco" / "instances.json").write_text(json.dumps(instances))
    return out
