"""Synthetic pose world in the real formats: ``tessera pose synth --out DIR --seed S``.

``DIR/coco/``: COCO keypoints (``annotations/person_keypoints_{split}2017.json``,
``{split}2017/*.jpg``, ``person_detection_results/COCO_{split}2017_detections.json``):
images of 1–2 rendered figures (limbs as filled capsules, torso, head, skin and clothing
colours) from :mod:`.motion` skeletons seen by random cameras, over cluttered backgrounds
with occluders; visibility v=1 for joints hidden by an occluder or the body, v=0 outside.
Detections are the ground-truth boxes jittered, with scores, plus low-score false boxes.

``DIR/h36m/``: the same motion model as VideoPose3D-prepared Human3.6M files
(``data_3d_h36m.npz`` 32 joints, ``data_2d_h36m_gt.npz`` and a noisy
``data_2d_h36m_det.npz``, ``cameras.json``): clips of train subjects S1 S5 S6 S7 S8, val S2,
test S9 S11, 4 cameras each.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter
from tqdm import tqdm

from tessera.datamodules.common import atomic_write_text
from tessera.datamodules.pose.h36m import Camera, project, world_to_camera
from tessera.datamodules.pose.motion import ACTIONS, sample_motion, to_coco
from tessera.datamodules.pose.skeleton import COCO_KEYPOINTS, COCO_SKELETON, H36M_32_TO_17

IMAGE_SIZE = (128, 128)
SPLIT_SUBJECTS = {"train": ("S1", "S5", "S6", "S7", "S8"), "val": ("S2",), "test": ("S9", "S11")}
CAMERA_IDS = ("54138969", "55011271", "58860488", "60457274")
# (joint a, joint b, width in metres, part) in COCO indices; drawn far to near.
LIMBS = [
    (5, 7, 0.10, "shirt"),
    (7, 9, 0.08, "skin"),
    (6, 8, 0.10, "shirt"),
    (8, 10, 0.08, "skin"),
    (11, 13, 0.15, "pants"),
    (13, 15, 0.12, "pants"),
    (12, 14, 0.15, "pants"),
    (14, 16, 0.12, "pants"),
]


def look_at_quaternion(position: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Camera→world quaternion (w, x, y, z) of a camera at ``position`` looking at
    ``target`` with image y pointing down (world z up)."""
    fwd = target - position
    fwd /= np.linalg.norm(fwd)
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    m = np.stack([right, down, fwd], axis=1)
    tr = np.trace(m)
    if tr > 0:
        s = np.sqrt(tr + 1) * 2
        return np.array(
            [s / 4, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
        )
    i = int(np.argmax(np.diag(m)))
    j, k = (i + 1) % 3, (i + 2) % 3
    s = np.sqrt(1 + m[i, i] - m[j, j] - m[k, k]) * 2
    q = np.zeros(4)
    q[0] = (m[k, j] - m[j, k]) / s
    q[1 + i] = s / 4
    q[1 + j] = (m[j, i] + m[i, j]) / s
    q[1 + k] = (m[k, i] + m[i, k]) / s
    return q


def random_camera(rng, target, size, cam_id="cam", distance=(3.5, 6.0)) -> Camera:
    """A pinhole camera aimed at ``target`` from a random direction and height."""
    yaw = rng.uniform(0, 2 * np.pi)
    d = rng.uniform(*distance)
    position = target + np.array([d * np.cos(yaw), d * np.sin(yaw), rng.uniform(-0.4, 0.9)])
    w, h = size
    f = rng.uniform(0.9, 1.3) * h * d / 2.6
    return Camera(
        cam_id,
        w,
        h,
        np.array([w / 2, h / 2]) + rng.normal(0, 0.02 * w, 2),
        np.array([f, f]),
        np.zeros(3),
        np.zeros(2),
        look_at_quaternion(position, target),
        position,
    )


def _colour(rng, lo=0, hi=255):
    return tuple(int(v) for v in rng.integers(lo, hi, 3))


def _background(rng, size) -> Image.Image:
    w, h = size
    img = Image.new("RGB", size, _colour(rng, 40, 220))
    draw = ImageDraw.Draw(img)
    for _ in range(rng.integers(6, 14)):
        x0, y0 = rng.uniform(-0.2, 1.0) * w, rng.uniform(-0.2, 1.0) * h
        x1, y1 = x0 + rng.uniform(0.05, 0.5) * w, y0 + rng.uniform(0.05, 0.5) * h
        shape = rng.integers(3)
        if shape == 0:
            draw.rectangle([x0, y0, x1, y1], fill=_colour(rng))
        elif shape == 1:
            draw.ellipse([x0, y0, x1, y1], fill=_colour(rng))
        else:
            draw.line([x0, y0, x1, y1], fill=_colour(rng), width=int(rng.integers(1, 5)))
    return img


def _capsule(draw, a, b, radius, fill):
    draw.line([tuple(a), tuple(b)], fill=fill, width=max(1, int(round(2 * radius))))
    for p in (a, b):
        draw.ellipse([p[0] - radius, p[1] - radius, p[0] + radius, p[1] + radius], fill=fill)


def render_person(img, mask, kp2d, depth, focal, colours):
    """Draw one figure; returns the per-keypoint "covered by the body" flags.

    ``kp2d`` ``(17, 2)`` pixels and ``depth`` ``(17,)`` camera-frame metres, COCO order.
    """
    draw, mdraw = ImageDraw.Draw(img), ImageDraw.Draw(mask)
    px = lambda metres, z: max(1.0, metres * focal / max(z, 0.1) / 2)  # noqa: E731
    parts = []
    for a, b, width, part in LIMBS:
        parts.append(((depth[a] + depth[b]) / 2, "limb", (a, b, width, part)))
    parts.append((depth[[5, 6, 11, 12]].mean(), "torso", None))
    parts.append((depth[:5].mean(), "head", None))
    covered = np.zeros(17, bool)
    torso = kp2d[[5, 6, 12, 11]]
    for _, kind, info in sorted(parts, key=lambda p: -p[0]):
        if kind == "limb":
            a, b, width, part = info
            r = px(width, (depth[a] + depth[b]) / 2)
            for d in (draw, mdraw):
                _capsule(d, kp2d[a], kp2d[b], r, colours[part] if d is draw else 255)
        elif kind == "torso":
            for d in (draw, mdraw):
                d.polygon([tuple(p) for p in torso], fill=colours["shirt"] if d is draw else 255)
            # joints behind the torso plane and inside its outline are hidden by it
            zt = depth[[5, 6, 11, 12]].mean()
            for k in (7, 8, 9, 10, 13, 14):
                if depth[k] > zt + 0.08 and _inside(kp2d[k], torso):
                    covered[k] = True
        else:
            covered[:5] = _head(img, mask, kp2d[:5], depth[:5], px(0.2, depth[0]), colours)
    return covered


def _shade(colour, factor):
    return tuple(int(min(255, c * factor)) for c in colour)


def _head(img, mask, face2d, face_depth, r, colours) -> np.ndarray:
    """A head of radius ``r`` pixels: hair over the skull, the face where it turns to the
    camera (skin, eyes, nose), ears at the sides; returns the face points it hides.

    ``face2d`` ``(5, 2)`` / ``face_depth`` ``(5,)``: nose, eyes, ears (COCO order). The nose
    and the eyes are drawn (visible) when nearer to the camera than the face points' centre,
    an ear unless it is more than 3 cm behind it (the far side of the head); the others are
    hidden by the head.
    """
    c, zc = face2d.mean(0), face_depth.mean()
    shown = np.concatenate([face_depth[:3] < zc, face_depth[3:] <= zc + 0.03])
    box = lambda p, q: [p[0] - q, p[1] - q, p[0] + q, p[1] + q]  # noqa: E731
    ImageDraw.Draw(mask).ellipse(box(c, r), fill=255)
    draw = ImageDraw.Draw(img)
    ear = _shade(colours["skin"], 0.85)
    for k in (3, 4):  # an ear on the far half is drawn before (behind) the head
        if shown[k] and face_depth[k] > zc:
            draw.ellipse(box(face2d[k], 0.3 * r), fill=ear)
    draw.ellipse(box(c, r), fill=colours["hair"])
    # How far the face turns to the camera: 1 facing it, -1 facing away (nose depth).
    facing = float(np.clip((zc - face_depth[0]) / max(np.abs(face_depth - zc).max(), 1e-6), -1, 1))
    if facing > -0.2:
        # the face disc slides from the centre towards the nose side as the head turns
        towards = face2d[0] - c
        fc = c + 0.35 * towards + np.array([0.0, 0.15 * r])
        layer = Image.new("L", img.size, 0)
        ImageDraw.Draw(layer).ellipse(box(fc, r * (0.55 + 0.3 * max(facing, 0))), fill=255)
        skull = Image.new("L", img.size, 0)
        ImageDraw.Draw(skull).ellipse(box(c, r), fill=255)
        img.paste(colours["skin"], mask=ImageChops.multiply(layer, skull))
    for k in (1, 2):
        if shown[k]:
            draw.ellipse(box(face2d[k], max(0.5, 0.17 * r)), fill=colours["eyes"])
    if shown[0]:
        draw.ellipse(box(face2d[0], max(0.5, 0.15 * r)), fill=_shade(colours["skin"], 0.7))
    for k in (3, 4):  # an ear on the near half is drawn over the hair
        if shown[k] and face_depth[k] <= zc:
            draw.ellipse(box(face2d[k], 0.3 * r), fill=ear)
    return ~shown


HAIR = ((20, 15, 10), (60, 35, 20), (110, 70, 35), (200, 170, 90), (150, 150, 150), (140, 50, 20))


def person_colours(rng) -> dict:
    """Skin, hair, eye and clothing colours of one figure."""
    hair = np.array(HAIR[rng.integers(len(HAIR))]) + rng.integers(-15, 16, 3)
    return {
        "skin": _colour(rng, 120, 255),
        "hair": tuple(int(v) for v in np.clip(hair, 0, 255)),
        "eyes": _colour(rng, 0, 60),
        "shirt": _colour(rng),
        "pants": _colour(rng),
    }


def _inside(p, poly) -> bool:
    inside = False
    for i in range(len(poly)):
        (x1, y1), (x2, y2) = poly[i], poly[(i + 1) % len(poly)]
        if (y1 > p[1]) != (y2 > p[1]) and p[0] < (x2 - x1) * (p[1] - y1) / (y2 - y1 + 1e-12) + x1:
            inside = not inside
    return inside


def make_image(rng, image_id: int, size=IMAGE_SIZE):
    """One image with 1–2 persons: PIL image, annotations, detections."""
    img = _background(rng, size)
    n = 1 if rng.random() < 0.6 else 2
    camera_target = np.array([0.0, 0.0, 0.9])
    cam = random_camera(rng, camera_target, size, distance=(3.2, 5.0) if n == 1 else (4.5, 6.5))
    right = qrot_vec(cam.orientation, np.array([1.0, 0, 0]))
    persons = []
    for p in range(n):
        joints, face = sample_motion(rng, 1)
        offset = (p - (n - 1) / 2) * rng.uniform(0.7, 1.1) * right
        offset[2] = 0
        coco3d = to_coco(joints[0], face[0]) + offset - joints[0, 0] * [1, 1, 0]
        cam3d = world_to_camera(coco3d, cam)
        persons.append((cam3d[:, 2].mean(), coco3d, cam3d))
    anns, dets = [], []
    for _, _world, cam3d in sorted(persons, key=lambda q: -q[0]):  # far first
        kp2d = project(cam3d, cam)
        mask = Image.new("L", size, 0)
        colours = person_colours(rng)
        covered = render_person(img, mask, kp2d, cam3d[:, 2], cam.focal_length[0], colours)
        anns.append({"kp": kp2d, "covered": covered, "mask": mask})
    # Nearer persons hide joints of farther ones.
    for i, a in enumerate(anns):
        for b in anns[i + 1 :]:
            m = np.asarray(b["mask"]) > 0
            for k, (x, y) in enumerate(a["kp"]):
                if 0 <= int(x) < size[0] and 0 <= int(y) < size[1] and m[int(y), int(x)]:
                    a["covered"][k] = True
    draw = ImageDraw.Draw(img)
    occluders = []
    if rng.random() < 0.35:  # an occluder in front of everything
        w, h = size
        x0, y0 = rng.uniform(0, 0.8) * w, rng.uniform(0.2, 0.9) * h
        box = [x0, y0, x0 + rng.uniform(0.1, 0.3) * w, y0 + rng.uniform(0.1, 0.3) * h]
        draw.rectangle(box, fill=_colour(rng))
        occluders.append(box)
    img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0, 0.7)))
    out_anns = []
    for a in anns:
        kp, covered = a["kp"], a["covered"].copy()
        for box in occluders:
            covered |= (
                (kp[:, 0] >= box[0])
                & (kp[:, 0] <= box[2])
                & (kp[:, 1] >= box[1])
                & (kp[:, 1] <= box[3])
            )
        inside = (kp[:, 0] >= 0) & (kp[:, 0] < size[0]) & (kp[:, 1] >= 0) & (kp[:, 1] < size[1])
        v = np.where(inside, np.where(covered, 1, 2), 0)
        mask = np.asarray(a["mask"]) > 0
        ys, xs = np.nonzero(mask)
        if len(xs) == 0 or (v > 0).sum() == 0:
            continue
        bbox = [
            float(xs.min()),
            float(ys.min()),
            float(xs.max() - xs.min() + 1),
            float(ys.max() - ys.min() + 1),
        ]
        xy = np.where(v[:, None] > 0, kp, 0).round(2)
        keypoints = []
        for k in range(17):
            keypoints += [float(xy[k, 0]), float(xy[k, 1]), int(v[k])]
        out_anns.append(
            {
                "segmentation": [],
                "num_keypoints": int((v > 0).sum()),
                "area": float(mask.sum()),
                "iscrowd": 0,
                "keypoints": keypoints,
                "image_id": image_id,
                "bbox": bbox,
                "category_id": 1,
            }
        )
        jitter = np.array(bbox) + rng.normal(0, 0.04, 4) * [bbox[2], bbox[3], bbox[2], bbox[3]]
        dets.append(
            {
                "image_id": image_id,
                "category_id": 1,
                "bbox": jitter.round(2).tolist(),
                "score": float(rng.uniform(0.7, 1.0)),
            }
        )
    if rng.random() < 0.3:  # a false positive
        dets.append(
            {
                "image_id": image_id,
                "category_id": 1,
                "score": float(rng.uniform(0.05, 0.4)),
                "bbox": [float(rng.uniform(0, 80)), float(rng.uniform(0, 60)), 30.0, 50.0],
            }
        )
    return img, out_anns, dets


def render_clip(rng, frames: int, size=(128, 128), fps: float = 25.0):
    """A short video of one moving figure seen by a fixed camera over a fixed background.

    Returns ``(video (T, H, W, 3) uint8, keypoints (T, 17, 2) pixels, COCO order)`` (demo
    examples and video tests).
    """
    background = _background(rng, size)
    cam = random_camera(rng, np.array([0.0, 0.0, 0.9]), size, distance=(3.4, 4.2))
    joints, face = sample_motion(rng, frames, fps=fps)
    coco = to_coco(joints, face) - joints[:1, :1] * [1, 1, 0]
    colours = person_colours(rng)
    video, keypoints = [], []
    for t in range(frames):
        cam3d = world_to_camera(coco[t], cam)
        kp2d = project(cam3d, cam)
        img = background.copy()
        render_person(img, Image.new("L", size, 0), kp2d, cam3d[:, 2], cam.focal_length[0], colours)
        video.append(np.asarray(img))
        keypoints.append(kp2d)
    return np.stack(video), np.stack(keypoints).astype(np.float32)


def qrot_vec(q, v):
    from tessera.datamodules.pose.h36m import qrot

    return qrot(np.asarray(q), np.asarray(v))


def write_coco_split(root: Path, split: str, count: int, rng) -> None:
    images, annotations, detections = [], [], []
    (root / f"{split}2017").mkdir(parents=True, exist_ok=True)
    offset = {"train": 100000, "val": 200000, "test": 300000}.get(split, 400000)
    for i in tqdm(range(count), desc=f"coco {split}", leave=False):
        image_id = offset + i
        img, anns, dets = make_image(rng, image_id)
        name = f"{image_id:012d}.jpg"
        img.save(root / f"{split}2017" / name, quality=92)
        images.append(
            {"file_name": name, "height": IMAGE_SIZE[1], "width": IMAGE_SIZE[0], "id": image_id}
        )
        for a in anns:
            a["id"] = len(annotations) + offset + 1
            annotations.append(a)
        detections += dets
    category = {
        "supercategory": "person",
        "id": 1,
        "name": "person",
        "keypoints": list(COCO_KEYPOINTS),
        "skeleton": [list(e) for e in COCO_SKELETON],
    }
    data = {
        "info": {"description": "Tessera synthetic pose world"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [category],
    }
    atomic_write_text(root / "annotations" / f"person_keypoints_{split}2017.json", json.dumps(data))
    atomic_write_text(
        root / "person_detection_results" / f"COCO_{split}2017_detections.json",
        json.dumps(detections),
    )


def write_h36m(root: Path, clips: dict[str, int], frames: int, rng) -> None:
    """Lifting clips per split as VideoPose3D-prepared Human3.6M files."""
    root.mkdir(parents=True, exist_ok=True)
    intrinsics, extrinsics = {}, {}
    size = (1000, 1000)
    for _k, cid in enumerate(CAMERA_IDS):
        f = 1150 + rng.normal(0, 10)
        intrinsics[cid] = {
            "res_w": size[0],
            "res_h": size[1],
            "center": [500 + rng.normal(0, 3), 500 + rng.normal(0, 3)],
            "focal_length": [f, f],
            "radial_distortion": [0.0, 0.0, 0.0],
            "tangential_distortion": [0.0, 0.0],
        }
    positions_3d, gt, det = {}, {}, {}
    for split, count in clips.items():
        subjects = SPLIT_SUBJECTS[split]
        for s in subjects:
            views = []
            for _k, cid in enumerate(CAMERA_IDS):
                cam = random_camera(rng, np.array([0, 0, 1.0]), size, cid, (4.5, 6.0))
                views.append(
                    {
                        "id": cid,
                        "orientation": cam.orientation.tolist(),
                        "translation": (cam.translation * 1000).tolist(),
                    }
                )
            extrinsics[s] = views
            positions_3d[s], gt[s], det[s] = {}, {}, {}
        for c in tqdm(range(count), desc=f"h36m {split}", leave=False):
            s = subjects[c % len(subjects)]
            action = f"{ACTIONS[c % len(ACTIONS)]} {c // len(ACTIONS) + 1}"
            joints, _ = sample_motion(rng, frames, ACTIONS[c % len(ACTIONS)], fps=50)
            pose32 = np.repeat(joints[:, :1], 32, axis=1)
            pose32[:, list(H36M_32_TO_17)] = joints
            positions_3d[s][action] = pose32.astype(np.float32)
            gt[s][action], det[s][action] = [], []
            for view in extrinsics[s]:
                i = intrinsics[view["id"]]
                cam = Camera(
                    view["id"],
                    1000,
                    1000,
                    np.array(i["center"]),
                    np.array(i["focal_length"]),
                    np.zeros(3),
                    np.zeros(2),
                    np.array(view["orientation"]),
                    np.array(view["translation"]) / 1000,
                )
                kp = project(world_to_camera(joints, cam), cam).astype(np.float32)
                gt[s][action].append(kp)
                det[s][action].append((kp + rng.normal(0, 3.0, kp.shape)).astype(np.float32))
    meta = {
        "layout_name": "h36m",
        "num_joints": 17,
        "keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]],
    }
    np.savez_compressed(root / "data_3d_h36m.npz", positions_3d=positions_3d)
    np.savez_compressed(root / "data_2d_h36m_gt.npz", positions_2d=gt, metadata=meta)
    np.savez_compressed(root / "data_2d_h36m_det.npz", positions_2d=det, metadata=meta)
    atomic_write_text(
        root / "cameras.json", json.dumps({"intrinsics": intrinsics, "extrinsics": extrinsics})
    )


def generate(
    out,
    seed: int = 0,
    train: int = 400,
    val: int = 50,
    test: int = 100,
    clips: tuple[int, int, int] | None = None,
    clip_frames: int = 200,
) -> Path:
    """Write the world; ``train/val/test`` images, ``clips`` lifting clips per split
    (default: one per 10 images, at least 1 for a non-empty split)."""
    out = Path(out)
    sizes = {"train": train, "val": val, "test": test}
    if clips is None:
        clips = tuple(max(1, n // 10) if n else 0 for n in sizes.values())
    for k, (split, n) in enumerate(sizes.items()):
        if n:
            write_coco_split(out / "coco", split, n, np.random.default_rng((seed, k)))
    write_h36m(
        out / "h36m",
        {s: c for s, c in zip(sizes, clips, strict=True) if c},
        clip_frames,
        np.random.default_rng((seed, 99)),
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tessera pose synth", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train", type=int, default=400, help="COCO images (0 = omit)")
    parser.add_argument("--val", type=int, default=50)
    parser.add_argument("--test", type=int, default=100)
    parser.add_argument(
        "--clips",
        type=int,
        nargs=3,
        default=None,
        metavar=("TRAIN", "VAL", "TEST"),
        help="lifting clips per split (default: images / 10)",
    )
    parser.add_argument("--clip-frames", type=int, default=200)
    args = parser.parse_args(argv)
    out = generate(
        args.out,
        args.seed,
        args.train,
        args.val,
        args.test,
        tuple(args.clips) if args.clips else None,
        args.clip_frames,
    )
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
