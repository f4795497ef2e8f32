"""Try-on dataset layouts as released (a few tiny items each).

- ``write_vitonhd``: VITON-HD (Choi et al., CVPR 2021) as distributed in the HR-VITON
  release (``sangyun884/HR-VITON`` README and ``cp_dataset.py``): ``{train,test}/{image,
  cloth, cloth-mask, image-parse-v3, image-parse-agnostic-v3.2, openpose_img, openpose_json,
  agnostic-v3.2, image-densepose}``, ``{train,test}_pairs.txt``; JPEG RGB persons/cloths,
  grey JPEG cloth masks, P-mode PNG CIHP parse maps (ids 0–19), OpenPose BODY_25 json
  (``people[0].pose_keypoints_2d``, 25 × (x, y, c)) and ``<id>_rendered.png`` skeletons.
- ``write_dresscode``: DressCode (``aimagelab/dress-code`` README + ``data/dataset.py``):
  ``{upper_body,lower_body,dresses}/{images/<id>_0.jpg (person) + <id>_1.jpg (garment),
  keypoints/<id>_2.json ({"keypoints": 18 × [x, y, score, id]} in a 384×512 frame),
  label_maps/<id>_4.png (ATR ids 0–17), skeletons/<id>_5.jpg, dense/<id>_5.png + _5_uv.npz}``
  and per category ``train_pairs.txt``, ``test_pairs_{paired,unpaired}.txt``. No garment
  masks ship with DressCode, so readers must derive them.
- ``write_mvg``: MV-VTON's MVG (``hywang2002/MV-VTON`` ``ldm/data/cp_dataset_mv_paired.py``):
  ``{train,test}/{image-wo-bg,cloth,cloth-mask,skeletons,inpaint_mask}/<id>_<view>/`` with
  three images sorted [front, target person, back], ``warp_feat/<id>_<view>.jpg``
  (``warp_feat_unpair`` for unpaired tests), top-level ``unpaired.txt`` (``person_id
  cloth_id``); views 1 front, 2 side, 3 back.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CIHP = {
    "hair": 2,
    "upper": 5,
    "pants": 9,
    "face": 13,
    "larm": 14,
    "rarm": 15,
    "lleg": 16,
    "rleg": 17,
    "lshoe": 18,
    "rshoe": 19,
}
ATR = {
    "hair": 2,
    "upper": 4,
    "pants": 6,
    "face": 11,
    "larm": 14,
    "rarm": 15,
    "lleg": 12,
    "rleg": 13,
    "lshoe": 9,
    "rshoe": 10,
}
COLOURS = {
    "hair": (60, 40, 20),
    "upper": (200, 40, 40),
    "pants": (40, 40, 140),
    "face": (230, 190, 160),
    "larm": (225, 185, 155),
    "rarm": (225, 185, 155),
    "lleg": (220, 180, 150),
    "rleg": (220, 180, 150),
    "lshoe": (20, 20, 20),
    "rshoe": (20, 20, 20),
}
BODY25_FROM_COCO = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)


def _joints(h: int, w: int, shift: float) -> np.ndarray:
    """COCO-18 joints (x, y) of a standing figure (person's right on the image left)."""
    x0 = w * (0.5 + shift)
    rel = [
        (0, 0.13),
        (0, 0.24),
        (-0.16, 0.26),
        (-0.22, 0.42),
        (-0.24, 0.56),
        (0.16, 0.26),
        (0.22, 0.42),
        (0.24, 0.56),
        (-0.08, 0.56),
        (-0.09, 0.75),
        (-0.09, 0.93),
        (0.08, 0.56),
        (0.09, 0.75),
        (0.09, 0.93),
        (-0.03, 0.11),
        (0.03, 0.11),
        (-0.05, 0.12),
        (0.05, 0.12),
    ]
    return np.array([(x0 + dx * w, dy * h) for dx, dy in rel], np.float32)


def _person(h: int, w: int, ids: dict, rng, pattern: bool = False):
    """(RGB image, parse ids, COCO joints) of a simple dressed figure."""
    p = _joints(h, w, rng.uniform(-0.05, 0.05))
    parse = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(parse)
    r = max(2, w // 24)
    for part, a, b in (("lleg", 11, 12), ("lleg", 12, 13), ("rleg", 8, 9), ("rleg", 9, 10)):
        d.line([tuple(p[a]), tuple(p[b])], fill=ids[part], width=2 * r)
    d.polygon([tuple(p[i]) for i in (8, 11, 12, 9)], fill=ids["pants"])
    for part, j in (("lshoe", 13), ("rshoe", 10)):
        d.ellipse((p[j][0] - r, p[j][1] - r, p[j][0] + r, p[j][1] + r), fill=ids[part])
    for part, a, b in (("rarm", 2, 3), ("rarm", 3, 4), ("larm", 5, 6), ("larm", 6, 7)):
        d.line([tuple(p[a]), tuple(p[b])], fill=ids[part], width=2 * r)
    d.polygon([tuple(p[i]) for i in (2, 5, 11, 8)], fill=ids["upper"])
    fx, fy = p[0]
    d.ellipse((fx - 2.5 * r, fy - 3 * r, fx + 2.5 * r, fy + 2.5 * r), fill=ids["face"])
    d.chord((fx - 2.7 * r, fy - 3.4 * r, fx + 2.7 * r, fy + r), 180, 360, fill=ids["hair"])
    parse = np.asarray(parse)
    image = np.full((h, w, 3), 245, np.uint8)
    for part, colour in COLOURS.items():
        image[parse == ids[part]] = colour
    if pattern:
        image[(parse == ids["upper"]) & (np.arange(w)[None] % 4 < 2)] = (250, 250, 80)
    noise = rng.integers(-6, 7, image.shape)
    return np.clip(image.astype(int) + noise, 0, 255).astype(np.uint8), parse, p


def _garment(h: int, w: int, rng, pattern: bool = False):
    """A flat shop image of a T-shirt on white, and its mask."""
    mask = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(mask)
    d.polygon(
        [
            (w * 0.3, h * 0.15),
            (w * 0.7, h * 0.15),
            (w * 0.95, h * 0.35),
            (w * 0.8, h * 0.45),
            (w * 0.72, h * 0.35),
            (w * 0.72, h * 0.85),
            (w * 0.28, h * 0.85),
            (w * 0.28, h * 0.35),
            (w * 0.2, h * 0.45),
            (w * 0.05, h * 0.35),
        ],
        fill=255,
    )
    m = np.asarray(mask) > 0
    image = np.full((h, w, 3), 250, np.uint8)
    image[m] = (200, 40, 40)
    if pattern:
        image[m & (np.arange(w)[None] % 4 < 2)] = (250, 250, 80)
    noise = rng.integers(-5, 6, image.shape)
    return np.clip(image.astype(int) + noise, 0, 255).astype(np.uint8), m


def _palette_png(path: Path, ids: np.ndarray) -> None:
    image = Image.fromarray(ids.astype(np.uint8), "P")
    palette = np.random.default_rng(1).integers(0, 256, (256, 3)).astype(np.uint8)
    palette[0] = 0
    image.putpalette(palette.flatten().tolist())
    image.save(path)


def _skeleton(p: np.ndarray, h: int, w: int) -> Image.Image:
    image = Image.new("RGB", (w, h), 0)
    d = ImageDraw.Draw(image)
    limbs = (
        (1, 2, (255, 85, 0)),
        (2, 3, (0, 170, 255)),
        (3, 4, (255, 255, 0)),
        (1, 5, (170, 255, 0)),
        (5, 6, (0, 255, 170)),
        (6, 7, (0, 255, 0)),
        (1, 8, (0, 255, 85)),
        (1, 11, (0, 85, 255)),
        (1, 0, (255, 0, 170)),
    )
    for a, b, colour in limbs:
        d.line([tuple(p[a]), tuple(p[b])], fill=colour, width=2)
    return image


def _save(path: Path, array: np.ndarray, **kwargs) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)


def _gray(person: np.ndarray, keep: np.ndarray) -> np.ndarray:
    out = person.copy()
    out[~keep] = 128
    return out


def write_vitonhd(root, n_train: int = 2, n_test: int = 2, size=(64, 48), seed: int = 0) -> Path:
    """VITON-HD as released (real files are 1024×768; ``size`` = (H, W) keeps tests small)."""
    root, rng = Path(root), np.random.default_rng(seed)
    h, w = size
    index = 0
    for split, n in (("train", n_train), ("test", n_test)):
        names = []
        for _ in range(n):
            name = f"{index:05d}_00"
            index += 1
            names.append(name)
            person, parse, p = _person(h, w, CIHP, rng)
            cloth, cmask = _garment(h, w, rng)
            base = root / split
            _save(base / "image" / f"{name}.jpg", person, quality=95)
            _save(base / "cloth" / f"{name}.jpg", cloth, quality=95)
            _save(base / "cloth-mask" / f"{name}.jpg", cmask.astype(np.uint8) * 255)
            (base / "image-parse-v3").mkdir(parents=True, exist_ok=True)
            _palette_png(base / "image-parse-v3" / f"{name}.png", parse)
            (base / "image-parse-agnostic-v3.2").mkdir(parents=True, exist_ok=True)
            _palette_png(
                base / "image-parse-agnostic-v3.2" / f"{name}.png",
                np.where(parse == CIHP["upper"], 0, parse),
            )
            upper = np.isin(parse, [CIHP["upper"], CIHP["larm"], CIHP["rarm"]])
            _save(base / "agnostic-v3.2" / f"{name}.jpg", _gray(person, ~upper), quality=95)
            _save(
                base / "image-densepose" / f"{name}.jpg",
                (rng.integers(0, 25, (h, w, 3)) * (parse > 0)[..., None]).astype(np.uint8),
            )
            (base / "openpose_img").mkdir(parents=True, exist_ok=True)
            _skeleton(p, h, w).save(base / "openpose_img" / f"{name}_rendered.png")
            body25 = np.zeros((25, 3), np.float32)
            body25[list(BODY25_FROM_COCO), :2] = p
            body25[list(BODY25_FROM_COCO), 2] = 0.9
            body25[8] = [(p[8, 0] + p[11, 0]) / 2, p[8, 1], 0.9]
            doc = {
                "version": 1.3,
                "people": [
                    {
                        "person_id": [-1],
                        "pose_keypoints_2d": body25.flatten().round(3).tolist(),
                        "face_keypoints_2d": [],
                        "hand_left_keypoints_2d": [],
                        "hand_right_keypoints_2d": [],
                    }
                ],
            }
            (base / "openpose_json").mkdir(parents=True, exist_ok=True)
            (base / "openpose_json" / f"{name}_keypoints.json").write_text(json.dumps(doc))
        # train pairs are each person's own cloth; test pairs are the unpaired setting
        cloths = names if split == "train" else names[1:] + names[:1]
        lines = "".join(f"{p}.jpg {c}.jpg\n" for p, c in zip(names, cloths, strict=True))
        (root / f"{split}_pairs.txt").write_text(lines)
    return root


def write_dresscode(root, n_per_category: int = 2, size=(64, 48), seed: int = 0) -> Path:
    """DressCode as released (real files 1024×768), all three categories."""
    root, rng = Path(root), np.random.default_rng(seed)
    h, w = size
    index = 0
    for category in ("upper_body", "lower_body", "dresses"):
        base = root / category
        names = []
        for _ in range(2 * n_per_category):
            name = f"{index:06d}"
            index += 1
            names.append(name)
            person, parse, p = _person(h, w, ATR, rng)
            cloth, _ = _garment(h, w, rng)
            _save(base / "images" / f"{name}_0.jpg", person, quality=95)
            _save(base / "images" / f"{name}_1.jpg", cloth, quality=95)
            (base / "label_maps").mkdir(parents=True, exist_ok=True)
            Image.fromarray(parse.astype(np.uint8), "L").save(base / "label_maps" / f"{name}_4.png")
            kp = np.concatenate([p * (512.0 / h), np.ones((18, 1)), np.arange(18)[:, None]], 1)
            (base / "keypoints").mkdir(parents=True, exist_ok=True)
            (base / "keypoints" / f"{name}_2.json").write_text(
                json.dumps({"keypoints": kp.round(2).tolist()})
            )
            _save(base / "skeletons" / f"{name}_5.jpg", np.asarray(_skeleton(p, h, w)))
            (base / "dense").mkdir(parents=True, exist_ok=True)
            Image.fromarray((parse > 0).astype(np.uint8) * 3, "L").save(
                base / "dense" / f"{name}_5.png"
            )
            np.savez_compressed(
                base / "dense" / f"{name}_5_uv.npz", uv=np.zeros((2, h, w), np.float32)
            )
        train, test = names[:n_per_category], names[n_per_category:]
        (base / "train_pairs.txt").write_text("".join(f"{n}_0.jpg {n}_1.jpg\n" for n in train))
        (base / "test_pairs_paired.txt").write_text("".join(f"{n}_0.jpg {n}_1.jpg\n" for n in test))
        shuffled = test[1:] + test[:1]
        (base / "test_pairs_unpaired.txt").write_text(
            "".join(f"{n}_0.jpg {c}_1.jpg\n" for n, c in zip(test, shuffled, strict=True))
        )
    return root


def write_mvg(root, n_train: int = 1, n_test: int = 2, size=(64, 64), seed: int = 0) -> Path:
    """MVG as MV-VTON's loaders read it (real images are resized to 512×512 there); each
    person id is written in the three views, the back view wearing the patterned back."""
    root, rng = Path(root), np.random.default_rng(seed)
    h, w = size
    lines = []
    index = 0
    for split, n in (("train", n_train), ("test", n_test)):
        base = root / split
        ids = [f"{index + i:05d}" for i in range(n)]
        index += n
        # unpaired.txt pairs people with garments of the same split (the loader looks there)
        lines += [f"{a} {b}\n" for a, b in zip(ids, ids[1:] + ids[:1], strict=True)]
        for pid in ids:
            front, front_mask = _garment(h, w, rng)
            back, back_mask = _garment(h, w, rng, pattern=True)
            for view in (1, 2, 3):
                folder = f"{pid}_{view}"
                person, parse, p = _person(h, w, CIHP, rng, pattern=view == 3)
                names = ("1.jpg", "2.jpg", "5.jpg")  # sorted: front, person, back
                region = np.isin(parse, [CIHP["upper"], CIHP["larm"], CIHP["rarm"]])
                for name, img in zip(names, (front, person, back), strict=True):
                    _save(base / "image-wo-bg" / folder / name, img, quality=95)
                for name, img in zip(names, (front, person, back), strict=True):
                    _save(base / "cloth" / folder / name, img, quality=95)
                for name, m in zip(names, (front_mask, region, back_mask), strict=True):
                    _save(base / "cloth-mask" / folder / name, m.astype(np.uint8) * 255)
                    _save(base / "inpaint_mask" / folder / name, region.astype(np.uint8) * 255)
                    _save(base / "skeletons" / folder / name, np.asarray(_skeleton(p, h, w)))
                _save(base / "warp_feat" / f"{folder}.jpg", _gray(person, ~region), quality=95)
                _save(base / "warp_feat_unpair" / f"{folder}.jpg", _gray(person, ~region))
    (root / "unpaired.txt").write_text("".join(lines))
    return root
