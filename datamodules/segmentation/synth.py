"""Synthetic shapes world for semantic and text-conditioned segmentation.

Scenes hold 2-4 shapes (kind x colour x size, unique per scene) on textured backgrounds, with
occlusion (later shapes cover earlier ones; every shape keeps >= 40 % of its area visible).
The same scenes are written in three real layouts:

- ``img_dir/<split>/<id>.png`` + ``ann_dir/<split>/<id>.png``: mmseg semantic layout, classes
  by shape kind (0 background, 1 circle, 2 square, 3 triangle), palette PNGs;
- ``grounding/``: VizWiz-VQA-Grounding layout, several questions per scene
  (``<split>_grounding.json``, ``<split>/<id>.png``, ``binary_masks_png/<split>/<id>.png``);
- ``refcoco/``: RefCOCO layout (``refcoco/refs(unc).p``, ``refcoco/instances.json`` with RLE
  masks, ``images/<id>.png``), one ref per shape plus gRefCOCO-style no-target refs.

The text decides the answer region: a question names a shape by all its attributes
("where is the small green triangle?"), by a spatial relation to another one ("the circle
left of the red square"), or describes a shape that is not there (empty mask) - usually one
attribute away from a shape that is, so every word matters.

``python -m tessera.datamodules.segmentation.synth --out DIR --seed S --train N --val N
--test N`` (also ``tessera segmentation synth``).
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils
from tqdm import tqdm

from tessera.datamodules.common import atomic_write_bytes, atomic_write_text
from tessera.datamodules.segmentation.io import write_image, write_label

KINDS = ("circle", "square", "triangle")
CLASSES = ("background", *KINDS)
COLOURS = {
    "red": (205, 40, 40),
    "green": (40, 175, 60),
    "blue": (45, 75, 210),
    "yellow": (225, 205, 40),
}
SIZES = ("small", "large")
RELATIONS = ("left of", "right of", "above", "below")
QUESTION_TEMPLATES = (
    "where is the {d}?",
    "can you find the {d}?",
    "show me the {d}",
    "which region is the {d}?",
)


@dataclass(frozen=True)
class Shape:
    kind: str
    colour: str
    size: str
    cy: float
    cx: float
    r: float

    @property
    def description(self) -> str:
        return f"{self.size} {self.colour} {self.kind}"


def _shape_mask(shape: Shape, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32) + 0.5
    dy, dx = yy - shape.cy, xx - shape.cx
    if shape.kind == "circle":
        return dy**2 + dx**2 <= shape.r**2
    if shape.kind == "square":
        half = shape.r * 0.85
        return (np.abs(dy) <= half) & (np.abs(dx) <= half)
    # upright triangle: apex at top, base at bottom
    top, bottom = -shape.r, shape.r * 0.8
    frac = (dy - top) / (bottom - top)
    return (dy >= top) & (dy <= bottom) & (np.abs(dx) <= frac * shape.r * 1.1)


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    base = rng.uniform(70, 180) + rng.uniform(-20, 20, size=3)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    theta, freq = rng.uniform(0, np.pi), rng.uniform(0.15, 0.6)
    stripes = np.sin(freq * (np.cos(theta) * xx + np.sin(theta) * yy) + rng.uniform(0, 6.3))
    texture = rng.uniform(8, 22) * stripes[..., None] + rng.normal(0, 6, size=(h, w, 3))
    return np.clip(base + texture, 0, 255)


def render_scene(rng: np.random.Generator, size: int = 64):
    """One scene: image ``(S, S, 3)`` uint8, per-shape visible masks, shapes, semantic map."""
    scale = size / 64
    while True:
        n = int(rng.integers(2, 5))
        combos = [(k, c, s) for k in KINDS for c in COLOURS for s in SIZES]
        picks = rng.choice(len(combos), size=n, replace=False)
        shapes = []
        for p in picks:
            kind, colour, sz = combos[p]
            r = (rng.uniform(5, 7) if sz == "small" else rng.uniform(10, 13)) * scale
            cy, cx = rng.uniform(r, size - r, size=2)
            shapes.append(Shape(kind, colour, sz, float(cy), float(cx), float(r)))
        full = [_shape_mask(s, size, size) for s in shapes]
        visible, covered = [], np.zeros((size, size), bool)
        for m in reversed(full):  # paint order = list order; later shapes are on top
            visible.append(m & ~covered)
            covered |= m
        visible = visible[::-1]
        if all(v.sum() >= 0.4 * f.sum() for v, f in zip(visible, full, strict=True)):
            break
    image = _background(rng, size, size)
    semantic = np.zeros((size, size), np.int64)
    for shape, m in zip(shapes, full, strict=True):
        shade = np.array(COLOURS[shape.colour]) + rng.uniform(-18, 18, size=3)
        image[m] = np.clip(shade + rng.normal(0, 5, size=(int(m.sum()), 3)), 0, 255)
        semantic[m] = CLASSES.index(shape.kind)
    return image.astype(np.uint8), visible, shapes, semantic


def _relation_holds(rel: str, a: Shape, b: Shape) -> bool:
    margin = 0.5 * max(a.r, b.r)
    return {
        "left of": a.cx < b.cx - margin,
        "right of": a.cx > b.cx + margin,
        "above": a.cy < b.cy - margin,
        "below": a.cy > b.cy + margin,
    }[rel]


def relational_queries(shapes: list[Shape]) -> list[tuple[str, int]]:
    """("the circle left of the red square", target index) with a unique target and anchor."""
    out = []
    for ai, anchor in enumerate(shapes):
        anchor_name = f"{anchor.colour} {anchor.kind}"
        if sum(f"{s.colour} {s.kind}" == anchor_name for s in shapes) != 1:
            continue
        for kind in KINDS:
            for rel in RELATIONS:
                hits = [
                    i
                    for i, s in enumerate(shapes)
                    if i != ai and s.kind == kind and _relation_holds(rel, s, anchor)
                ]
                same_kind = [i for i, s in enumerate(shapes) if i != ai and s.kind == kind]
                # unique target, and the relation is needed (another shape of that kind exists)
                if len(hits) == 1 and len(same_kind) > 1:
                    out.append((f"the {kind} {rel} the {anchor_name}", hits[0]))
    return out


def absent_description(rng: np.random.Generator, shapes: list[Shape]) -> str:
    """A description one attribute away from a present shape, matching none of them."""
    present = {s.description for s in shapes}
    base = shapes[int(rng.integers(len(shapes)))]
    options = [f"{sz} {base.colour} {base.kind}" for sz in SIZES if sz != base.size] + [
        f"{base.size} {c} {base.kind}" for c in COLOURS if c != base.colour
    ]
    options += [f"{base.size} {base.colour} {k}" for k in KINDS if k != base.kind]
    options = [o for o in options if o not in present]
    return options[int(rng.integers(len(options)))]


def make_question(
    rng: np.random.Generator, shapes: list[Shape], masks: list[np.ndarray], p_empty: float = 0.2
) -> tuple[str, np.ndarray, str, str]:
    """A question about the scene: text, target mask, type (attribute/relation/empty), answer."""
    empty = np.zeros_like(masks[0])
    template = QUESTION_TEMPLATES[int(rng.integers(len(QUESTION_TEMPLATES)))]
    u = rng.random()
    if u < p_empty:
        return template.format(d=absent_description(rng, shapes)), empty, "empty", "unanswerable"
    relations = relational_queries(shapes)
    if u < p_empty + 0.2 and relations:
        text, target = relations[int(rng.integers(len(relations)))]
        return f"where is {text}?", masks[target], "relation", shapes[target].description
    target = int(rng.integers(len(shapes)))
    answer = shapes[target].description
    return template.format(d=answer), masks[target], "attribute", answer


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")}


def generate(
    out: str | Path,
    seed: int = 0,
    splits: dict[str, int] | None = None,
    size: int = 64,
    progress: bool = True,
    questions_per_image: int = 3,
) -> Path:
    """Write the world to ``out`` (deterministic for ``seed``); returns ``out``.

    Each scene gets ``questions_per_image`` grounding questions (VizWiz keys ``<id>.png``,
    ``<id>_q1.png``, ...; the image files are hard links).
    """
    out = Path(out)
    splits = {"train": 400, "val": 50, "test": 100} if splits is None else splits
    coco = {"images": [], "annotations": [], "categories": []}
    coco["categories"] = [{"id": i, "name": k} for i, k in enumerate(KINDS, start=1)]
    refs: list[dict] = []
    total = sum(splits.values())
    bar = tqdm(total=total, desc="synth segmentation world", disable=not progress)
    for split_index, (split, n) in enumerate(splits.items()):
        if n <= 0:
            continue
        rng = np.random.default_rng([seed, split_index])
        qrng = np.random.default_rng([seed, split_index, 1])
        questions = {}
        for i in range(n):
            item_id = f"{split}_{i:05d}"
            image, masks, shapes, semantic = render_scene(rng, size)
            img_path = write_image(out / "img_dir" / split / f"{item_id}.png", image)
            write_label(out / "ann_dir" / split / f"{item_id}.png", semantic)
            # VizWiz-grounding layout: the first question draws from the scene stream, extra
            # ones (hard-linked copies of the image) from their own, so scenes do not change
            for q in range(questions_per_image):
                text, target, kind, answer = make_question(rng if q == 0 else qrng, shapes, masks)
                name = f"{item_id}.png" if q == 0 else f"{item_id}_q{q}.png"
                _link_or_copy(img_path, out / "grounding" / split / name)
                mask_path = out / "grounding" / "binary_masks_png" / split / name
                write_label(mask_path, target, binary=True)
                questions[name] = {
                    "question": text,
                    "answers": [answer],
                    "answer_type": kind,
                    "height": size,
                    "width": size,
                }
            # RefCOCO layout: one ref per shape, one no-target ref per image
            name = f"{item_id}.png"
            image_id = len(coco["images"]) + 1
            _link_or_copy(
                img_path, out / "refcoco" / "images" / "mscoco" / "images" / "train2014" / name
            )
            coco["images"].append(
                {"id": image_id, "file_name": name, "height": size, "width": size}
            )
            sentences = []
            for shape, m in zip(shapes, masks, strict=True):
                ann_id = len(coco["annotations"]) + 1
                coco["annotations"].append(
                    {
                        "id": ann_id,
                        "image_id": image_id,
                        "category_id": KINDS.index(shape.kind) + 1,
                        "segmentation": _rle(m),
                        "area": int(m.sum()),
                        "bbox": list(
                            mask_utils.toBbox(
                                mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
                            )
                        ),
                        "iscrowd": 0,
                    }
                )
                sentences.append((ann_id, f"the {shape.description}"))
            relations = relational_queries(shapes)
            if relations:
                text, target_index = relations[int(rng.integers(len(relations)))]
                sentences.append((coco["annotations"][-len(shapes) + target_index]["id"], text))
            sentences.append((-1, f"the {absent_description(rng, shapes)}"))
            for ann_id, sent in sentences:
                ref_id = len(refs) + 1
                refs.append(
                    {
                        "ref_id": ref_id,
                        "ann_id": ann_id,
                        "image_id": image_id,
                        "split": split,
                        "file_name": name,
                        "category_id": coco["annotations"][ann_id - 1]["category_id"]
                        if ann_id > 0
                        else 0,
                        "sent_ids": [ref_id],
                        "sentences": [
                            {"raw": sent, "sent": sent, "sent_id": ref_id, "tokens": sent.split()}
                        ],
                    }
                )
            bar.update(1)
        atomic_write_text(
            out / "grounding" / f"{split}_grounding.json", json.dumps(questions, indent=1)
        )
    bar.close()
    atomic_write_text(out / "refcoco" / "refcoco" / "instances.json", json.dumps(coco))
    atomic_write_bytes(out / "refcoco" / "refcoco" / "refs(unc).p", pickle.dumps(refs, protocol=2))
    atomic_write_text(
        out / "world.json",
        json.dumps({"seed": seed, "splits": splits, "size": size, "classes": list(CLASSES)}),
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tessera segmentation synth", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train", type=int, default=400, help="train scenes (0 = omit)")
    parser.add_argument("--val", type=int, default=50, help="val scenes (0 = omit)")
    parser.add_argument("--test", type=int, default=100, help="test scenes (0 = omit)")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--questions", type=int, default=3, help="grounding questions per image")
    args = parser.parse_args(argv)
    splits = {"train": args.train, "val": args.val, "test": args.test}
    generate(args.out, args.seed, splits, args.size, questions_per_image=args.questions)
    print(f"wrote the segmentation world to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
