"""Synthetic try-on world: paper-doll people in front, side and back views.

``tessera tryon synth --out DIR --seed S [--train N] [--val N] [--test N] [--layout mvg|vitonhd]``

Each garment is a T-shirt whose front and back carry different designs (a chest logo, stripes,
a checker, a big band …), photographed flat in a canonical pose on white (the shop image,
with its mask). Each person has their own body shape, skin and hair colours, arm angles,
scale and position, and is drawn wearing the garment: the torso pattern is mapped onto the
torso quad spanned by shoulders and hips, sleeves follow the arms, folds and shading depend
on the pose — so pasting the flat garment is a weak answer and the model must learn the warp,
and the back view shows the back design, so the view choice matters.

The ``mvg`` layout (default) writes, per garment ``<id>``, the three views ``<id>_{1,2,3}``
as MV-VTON's MVG; ``vitonhd`` writes front views in VITON-HD's layout. Parse maps (CIHP
ids), OpenPose BODY_25 json, rendered skeletons, masks and agnostic images come with them.
Besides MVG's folders, the ``mvg`` layout writes ``counterfactual/<id>_3/2.jpg`` (tessera's
own, not in MVG): each back-view target person wearing the garment back to front (the front
design on the back, same body, pose and sensor noise), the reference of the exact view score
(:func:`tessera.apps.tryon.metrics.view_preference`).
"""

from __future__ import annotations

import argparse
import copy
import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from tqdm import tqdm

from tessera.datamodules.tryon.agnostic import agnostic_image, inpainting_mask, prealign_garment
from tessera.datamodules.tryon.keypoints import BODY25_TO_COCO18, render_skeleton
from tessera.datamodules.tryon.labels import CIHP

SIZE = (128, 96)
DESIGNS = ("logo", "stripes", "checker", "band", "dots", "plain")
L = {n: i for i, n in enumerate(CIHP.classes)}


@dataclass
class Garment:
    base: tuple[int, int, int]
    accent: tuple[int, int, int]
    front: str
    back: str
    long_sleeves: bool

    def pattern(self, side: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Accent mask of design ``self.<side>`` at torso coordinates u, v ∈ [0, 1]."""
        design = self.front if side == "front" else self.back
        if design == "logo":
            return (u - 0.5) ** 2 + (v - 0.32) ** 2 < 0.035
        if design == "stripes":
            return (v * 6) % 1 < 0.45
        if design == "checker":
            return ((u * 4).astype(int) + (v * 5).astype(int)) % 2 == 0
        if design == "band":
            return (v > 0.45) & (v < 0.7)
        if design == "dots":
            return ((u * 4) % 1 - 0.5) ** 2 + ((v * 5) % 1 - 0.5) ** 2 < 0.06
        return np.zeros_like(u, bool)


def worn_back_to_front(g: Garment) -> Garment:
    """``g`` turned round: the back view shows the front design."""
    return replace(g, front=g.back, back=g.front)


def random_garment(rng: np.random.Generator) -> Garment:
    front, back = rng.choice(len(DESIGNS), 2, replace=False)
    base = tuple(int(c) for c in rng.integers(40, 200, 3))
    accent = tuple(int(255 - c + rng.integers(-30, 30)) % 256 for c in base)
    return Garment(base, accent, DESIGNS[front], DESIGNS[back], bool(rng.random() < 0.5))


def _torso_uv(quad: np.ndarray, h: int, w: int):
    """Pixels inside the torso quad [r_shoulder, l_shoulder, l_hip, r_hip] and their (u, v):
    v runs shoulders → hips, u from the right-side edge (r_shoulder → r_hip) to the left-side
    one at that height: leftwards in the image when the quad is mirrored (a back view, a back
    shop photo), so designs that vary across the torso show there too."""
    image = Image.new("L", (w, h), 0)
    ImageDraw.Draw(image).polygon([tuple(p) for p in quad], fill=255)
    inside = np.asarray(image) > 0
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    top = (quad[0, 1] + quad[1, 1]) / 2
    bottom = (quad[2, 1] + quad[3, 1]) / 2
    v = np.clip((ys - top) / max(bottom - top, 1), 0, 1)
    left = quad[0, 0] + (quad[3, 0] - quad[0, 0]) * v
    right = quad[1, 0] + (quad[2, 0] - quad[1, 0]) * v
    span = right - left
    span = np.where(np.abs(span) < 1, np.where(span < 0, -1.0, 1.0), span)
    u = np.clip((xs - left) / span, 0, 1)
    return inside, u, v


def shop_image(g: Garment, side: str, size=SIZE) -> tuple[np.ndarray, np.ndarray]:
    """The flat garment (front or back) on white in a canonical T pose, and its mask."""
    h, w = size
    quad = np.array(
        [[0.3 * w, 0.18 * h], [0.7 * w, 0.18 * h], [0.7 * w, 0.86 * h], [0.3 * w, 0.86 * h]],
        np.float32,
    )
    if side == "back":  # a back shop photo shows the garment's right side on the image right
        quad = quad[[1, 0, 3, 2]]
    inside, u, v = _torso_uv(quad, h, w)
    sleeves = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(sleeves)
    reach = 0.42 if g.long_sleeves else 0.2
    for sx, dx in ((0.3, -1), (0.7, 1)):
        d.line(
            [(sx * w, 0.22 * h), ((sx + dx * reach * 0.55) * w, (0.22 + reach) * h)],
            fill=255,
            width=int(0.12 * w),
        )
    mask = inside | (np.asarray(sleeves) > 0)
    image = np.full((h, w, 3), 250, np.uint8)
    image[mask] = g.base
    image[inside & g.pattern(side, u, v)] = g.accent
    return image, mask


@dataclass
class Body:
    cx: float
    top: float
    scale: float
    shoulder: float
    hip: float
    arm_r: float
    arm_l: float
    elbow_r: float
    elbow_l: float
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    pants: tuple[int, int, int]
    background: tuple[int, int, int]


def random_body(rng: np.random.Generator) -> Body:
    skin = tuple(int(c) for c in np.array([230, 190, 160]) * rng.uniform(0.45, 1.05))
    return Body(
        cx=rng.uniform(0.42, 0.58),
        top=rng.uniform(0.03, 0.1),
        scale=rng.uniform(0.8, 0.95),
        shoulder=rng.uniform(0.14, 0.2),
        hip=rng.uniform(0.08, 0.13),
        arm_r=rng.uniform(0.15, 0.9),
        arm_l=rng.uniform(0.15, 0.9),
        elbow_r=rng.uniform(-0.3, 0.6),
        elbow_l=rng.uniform(-0.3, 0.6),
        skin=tuple(min(255, c) for c in skin),
        hair=tuple(int(c) for c in rng.integers(10, 120, 3)),
        pants=tuple(int(c) for c in rng.integers(20, 140, 3)),
        background=tuple(int(c) for c in rng.integers(215, 250, 3)),
    )


def joints(b: Body, view: int, size=SIZE) -> np.ndarray:
    """COCO-18 (x, y) joints. Front view: the person's right is on the image left; back
    view: mirrored; side view: shoulders and hips foreshortened."""
    h, w = size
    s = b.scale * h
    sign = {1: 1.0, 2: 1.0, 3: -1.0}[view]
    narrow = 0.45 if view == 2 else 1.0
    x0, y0 = b.cx * w, b.top * h
    neck = np.array([x0, y0 + 0.2 * s])
    p = np.zeros((18, 2), np.float32)
    p[0] = [x0, y0 + 0.1 * s]
    p[1] = neck
    half = b.shoulder * w * narrow
    p[2] = neck + [-sign * half, 0.02 * s]
    p[5] = neck + [sign * half, 0.02 * s]
    for sh, el, wr, ang, bend, side in (
        (2, 3, 4, b.arm_r, b.elbow_r, -1),
        (5, 6, 7, b.arm_l, b.elbow_l, 1),
    ):
        d = np.array([side * sign * np.sin(ang), np.cos(ang)])
        p[el] = p[sh] + d * 0.2 * s
        a2 = ang + bend
        p[wr] = p[el] + np.array([side * sign * np.sin(a2), np.cos(a2)]) * 0.18 * s
    hip_half = b.hip * w * narrow
    hip_y = y0 + 0.52 * s
    p[8] = [x0 - sign * hip_half, hip_y]
    p[11] = [x0 + sign * hip_half, hip_y]
    for hp, kn, an in ((8, 9, 10), (11, 12, 13)):
        p[kn] = p[hp] + [0, 0.24 * s]
        p[an] = p[kn] + [0, 0.22 * s]
    p[14:16] = p[0] + [[-0.02 * s * sign, -0.01 * s], [0.02 * s * sign, -0.01 * s]]
    p[16:18] = p[0] + [[-0.04 * s * sign, 0], [0.04 * s * sign, 0]]
    if view == 3:
        p[14:] = 0  # eyes and ears are not seen from behind
    return p


def render_person(b: Body, g: Garment, view: int, rng, size=SIZE):
    """(RGB image, CIHP parse, joints) of the body wearing the garment in one view."""
    h, w = size
    p = joints(b, view, size)
    s = b.scale * h
    parse = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(parse)
    limb = max(2, int(0.05 * s))
    for a, c, lab in (
        (8, 9, "right_leg"),
        (9, 10, "right_leg"),
        (11, 12, "left_leg"),
        (12, 13, "left_leg"),
    ):
        d.line([tuple(p[a]), tuple(p[c])], fill=L[lab], width=limb + 1)
    d.polygon(
        [
            tuple(p[8] + [-limb / 2 * np.sign(p[8, 0] - p[11, 0]) * -1, 0]),
            tuple(p[11]),
            tuple(p[12]),
            tuple(p[9]),
        ],
        fill=L["pants"],
    )
    for a, c, lab in ((8, 9, "pants"), (9, 10, "pants"), (11, 12, "pants"), (12, 13, "pants")):
        d.line([tuple(p[a]), tuple(p[c])], fill=L[lab], width=limb + 1)
    for an, lab in ((10, "right_shoe"), (13, "left_shoe")):
        x, y = p[an]
        d.ellipse((x - limb, y - limb / 2, x + limb, y + limb), fill=L[lab])
    for sh, el, wr, lab in ((2, 3, 4, "right_arm"), (5, 6, 7, "left_arm")):
        d.line([tuple(p[sh]), tuple(p[el]), tuple(p[wr])], fill=L[lab], width=limb, joint="curve")
    # head: face in front/side, hair only from behind
    hx, hy = p[0]
    r = 0.075 * s
    d.ellipse(
        (hx - r * 0.85, hy - r, hx + r * 0.85, hy + r), fill=L["hair" if view == 3 else "face"]
    )
    if view != 3:
        d.chord(
            (hx - r * 0.95, hy - r * 1.15, hx + r * 0.95, hy + r * 0.2), 180, 360, fill=L["hair"]
        )
    # neck
    d.line([tuple(p[0] + [0, r]), tuple(p[1])], fill=L["hair" if view == 3 else "face"], width=limb)
    quad = np.stack([p[2], p[5], p[11], p[8]]) + [
        [0, -0.01 * s],
        [0, -0.01 * s],
        [0, 0.03 * s],
        [0, 0.03 * s],
    ]
    inside, u, v = _torso_uv(quad, h, w)
    parse = np.asarray(parse).copy()
    parse[inside] = L["upper_clothes"]
    # sleeves over the upper arm (and forearm when long)
    sleeves = Image.new("L", (w, h), 0)
    sd = ImageDraw.Draw(sleeves)
    for sh, el, wr in ((2, 3, 4), (5, 6, 7)):
        end = p[wr] if g.long_sleeves else p[sh] + (p[el] - p[sh]) * 0.7
        pts = (
            [tuple(p[sh]), tuple(p[el]), tuple(end)]
            if g.long_sleeves
            else [tuple(p[sh]), tuple(end)]
        )
        sd.line(pts, fill=255, width=limb + 2, joint="curve")
    sleeve = np.asarray(sleeves) > 0
    parse[sleeve] = L["upper_clothes"]
    colours = {
        "face": b.skin,
        "right_arm": b.skin,
        "left_arm": b.skin,
        "right_leg": b.skin,
        "left_leg": b.skin,
        "hair": b.hair,
        "pants": b.pants,
        "right_shoe": (25, 25, 25),
        "left_shoe": (25, 25, 25),
    }
    image = np.empty((h, w, 3), np.float32)
    image[:] = b.background
    for name, colour in colours.items():
        image[parse == L[name]] = colour
    side = "back" if view == 3 else "front"
    if view == 2:  # a three-quarter turn: the front design squeezed towards the far side
        u = np.clip(u * 1.3, 0, 1)
    cloth = np.empty((h, w, 3), np.float32)
    cloth[:] = g.base
    cloth[inside & g.pattern(side, u, v)] = g.accent
    # shading and folds: darker towards the edges and where the raised arms pull the fabric
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    pull = abs(b.arm_r - b.arm_l) + 0.5
    folds = 0.9 + 0.1 * np.cos(2 * np.pi * (v * 3 + u * pull))
    edge = 1 - 0.25 * (2 * u - 1) ** 2
    shade = np.where(inside, folds * edge, 0.85 + 0.1 * np.cos(xs / 3 + ys / 5))
    worn = parse == L["upper_clothes"]
    image[worn] = (cloth * shade[..., None])[worn]
    noise = rng.normal(0, 2.0, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8), parse, p


def _palette() -> list[int]:
    rng = np.random.default_rng(20)
    palette = rng.integers(0, 256, (256, 3))
    palette[0] = 0
    return palette.astype(np.uint8).flatten().tolist()


def _save(path: Path, array: np.ndarray, mode: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(array, mode) if mode else Image.fromarray(array)
    if mode == "P":
        image.putpalette(_palette())
    kwargs = {"quality": 95} if path.suffix == ".jpg" else {}
    image.save(path, **kwargs)


def _openpose_json(points: np.ndarray) -> str:
    body25 = np.zeros((25, 3), np.float32)
    seen = (points[:, 0] > 0) | (points[:, 1] > 0)
    body25[list(BODY25_TO_COCO18), :2] = points
    body25[list(BODY25_TO_COCO18), 2] = seen * 0.9
    body25[8] = [(points[8, 0] + points[11, 0]) / 2, points[8, 1], 0.9]
    return json.dumps(
        {
            "version": 1.3,
            "people": [
                {"person_id": [-1], "pose_keypoints_2d": body25.flatten().round(2).tolist()}
            ],
        }
    )


def _person_files(b, g, view, rng, size):
    image, parse, points = render_person(b, g, view, rng, size)
    mask = inpainting_mask(parse, points, CIHP)
    return image, parse, points, mask


def write_mvg_split(root: Path, split: str, n: int, rng, start: int, size=SIZE) -> list[str]:
    base = root / split
    names = ("1.jpg", "2.jpg", "3.jpg")  # sorted: [front, target person, back]
    ids = []
    for k in tqdm(range(n), desc=f"synth {split}", unit="garment"):
        pid = f"{start + k:05d}"
        ids.append(pid)
        g = random_garment(rng)
        shop = {side: shop_image(g, side, size) for side in ("front", "back")}
        body = random_body(rng)
        refs = {v: render_person(body, g, v, rng, size) for v in (1, 3)}
        for view in (1, 2, 3):
            folder = f"{pid}_{view}"
            person_body = random_body(rng)
            same_noise = copy.deepcopy(rng)
            image, parse, points, mask = _person_files(person_body, g, view, rng, size)
            if view == 3:
                turned = render_person(person_body, worn_back_to_front(g), view, same_noise, size)
                _save(base / "counterfactual" / folder / names[1], turned[0])
            for name, img in zip(names, (refs[1][0], image, refs[3][0]), strict=True):
                _save(base / "image-wo-bg" / folder / name, img)
            skels = (refs[1][2], points, refs[3][2])
            for name, pts in zip(names, skels, strict=True):
                _save(base / "skeletons" / folder / name, np.asarray(render_skeleton(pts, size)))
            cloths = (shop["front"], (image, mask), shop["back"])
            for name, (img, m) in zip(names, cloths, strict=True):
                _save(base / "cloth" / folder / name, img)
                _save(base / "cloth-mask" / folder / name, m.astype(np.uint8) * 255)
                _save(base / "inpaint_mask" / folder / name, mask.astype(np.uint8) * 255)
            agnostic = agnostic_image(image, mask)
            chosen = shop["back"] if view == 3 else shop["front"]
            warp = prealign_garment(agnostic, mask, *chosen)
            _save(base / "warp_feat" / f"{folder}.jpg", warp)
    return ids


def write_vitonhd_split(root: Path, split: str, n: int, rng, start: int, size=SIZE) -> list[str]:
    base = root / split
    names = []
    for k in tqdm(range(n), desc=f"synth {split}", unit="person"):
        name = f"{start + k:05d}_00"
        names.append(name)
        g = random_garment(rng)
        cloth, cloth_mask = shop_image(g, "front", size)
        image, parse, points, mask = _person_files(random_body(rng), g, 1, rng, size)
        _save(base / "image" / f"{name}.jpg", image)
        _save(base / "cloth" / f"{name}.jpg", cloth)
        _save(base / "cloth-mask" / f"{name}.jpg", cloth_mask.astype(np.uint8) * 255)
        _save(base / "image-parse-v3" / f"{name}.png", parse.astype(np.uint8), "P")
        parse_agnostic = np.where(mask, 0, parse).astype(np.uint8)
        _save(base / "image-parse-agnostic-v3.2" / f"{name}.png", parse_agnostic, "P")
        _save(base / "agnostic-v3.2" / f"{name}.jpg", agnostic_image(image, mask))
        _save(
            base / "openpose_img" / f"{name}_rendered.png",
            np.asarray(render_skeleton(points, size)),
        )
        (base / "openpose_json").mkdir(parents=True, exist_ok=True)
        (base / "openpose_json" / f"{name}_keypoints.json").write_text(_openpose_json(points))
    return names


def generate(
    out, seed: int = 0, train: int = 40, val: int = 4, test: int = 8, layout: str = "mvg", size=SIZE
) -> Path:
    """Write the world; ``train``/``val``/``test`` count garments (mvg: × 3 views) or persons."""
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    start = 0
    unpaired = []
    for split, n in (("train", train), ("val", val), ("test", test)):
        if n <= 0:
            continue
        if layout == "mvg":
            ids = write_mvg_split(root, split, n, rng, start, size)
            unpaired += list(zip(ids, ids[1:] + ids[:1], strict=True))
        elif layout == "vitonhd":
            names = write_vitonhd_split(root, split, n, rng, start, size)
            shifted = names if split == "train" else names[1:] + names[:1]
            (root / f"{split}_pairs.txt").write_text(
                "".join(f"{a}.jpg {c}.jpg\n" for a, c in zip(names, shifted, strict=True))
            )
        else:
            raise ValueError(f"layout must be 'mvg' or 'vitonhd', got {layout!r}")
        start += n
    if layout == "mvg":
        (root / "unpaired.txt").write_text("".join(f"{a} {c}\n" for a, c in unpaired))
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tessera tryon synth",
        description="Write a paper-doll try-on world in the MVG or VITON-HD layout.",
    )
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train", type=int, default=40)
    parser.add_argument("--val", type=int, default=4)
    parser.add_argument("--test", type=int, default=8)
    parser.add_argument("--layout", default="mvg", choices=("mvg", "vitonhd"))
    parser.add_argument("--size", type=int, nargs=2, default=list(SIZE), metavar=("H", "W"))
    args = parser.parse_args(argv)
    generate(args.out, args.seed, args.train, args.val, args.test, args.layout, tuple(args.size))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
