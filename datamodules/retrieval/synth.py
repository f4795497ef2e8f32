"""Synthetic text-video world in the MSR-VTT layout (the smoke test, not the product).

Each clip (2-4 s, 8 fps, rendered with PyAV) is a sequence of 2 or 3 *events* over a
background colour: in each, a shape (circle, square, triangle) of one colour slides across
the frame (left, right, up or down). Event lengths vary, so an event can fill a third or
most of the clip. The sound track follows the events: each shape has its own tone, and an
onset click marks each new event; about one clip in six has no audio track.

Captions (MSR-VTT has 20 per video; here 4-5) are compositional: the whole clip ("first a
red circle moves left, then a blue square moves up"), and partial ones naming only one or
two of the events ("a blue square moves up"). A partial caption matches a few frames of
its clip while the other events are distractors, which is what text-conditioned pooling is
for. The test sentence of each clip (``MSRVTT_JSFUSION_test.csv``, 1k-A's role) names two
events, half the time the whole two-event clip, else two of three events.

Splits: ``train`` → ``MSRVTT_train.9k.csv`` (and a 7k subset), ``val`` → the json's
``validate`` videos (read as split ``validate_full``), ``test`` → JSFUSION + json ``test``.

    tessera retrieval synth --out world --seed 0 --train 400 --val 50 --test 100
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from tessera.datamodules.common.video import write_video

COLOURS = {
    "red": (230, 40, 40),
    "green": (40, 200, 60),
    "blue": (50, 80, 240),
    "yellow": (240, 220, 40),
    "white": (245, 245, 245),
    "purple": (160, 50, 210),
}
SHAPES = ("circle", "square", "triangle")
DIRECTIONS = ("left", "right", "up", "down")
BACKGROUNDS = ((20, 20, 30), (40, 30, 20), (15, 40, 35), (45, 45, 45), (30, 15, 40))
TONES = {"circle": 330.0, "square": 550.0, "triangle": 880.0}
FPS, SAMPLE_RATE = 8, 16000


def _mask(shape: str, size: int, cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    if shape == "circle":
        return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    if shape == "square":
        return (np.abs(xx - cx) <= r * 0.85) & (np.abs(yy - cy) <= r * 0.85)
    return (yy - cy <= r * 0.8) & (yy - cy >= -r) & (np.abs(xx - cx) <= (yy - cy + r) * 0.55)


def render_clip(events: list[dict], lengths: list[int], size: int, background) -> np.ndarray:
    """uint8 ``(sum(lengths), size, size, 3)``: each event's shape sliding in its direction."""
    frames = []
    r = size * 0.2
    for event, n in zip(events, lengths, strict=True):
        for i in range(n):
            t = i / max(1, n - 1)
            along = r + t * (size - 2 * r)
            pos = {"right": (along, size / 2), "left": (size - along, size / 2),
                   "down": (size / 2, along), "up": (size / 2, size - along)}  # fmt: skip
            cx, cy = pos[event["direction"]]
            frame = np.empty((size, size, 3), np.uint8)
            frame[:] = background
            frame[_mask(event["shape"], size, cx, cy, r)] = COLOURS[event["colour"]]
            frames.append(frame)
    return np.stack(frames)


def render_audio(events: list[dict], lengths: list[int], rng: np.random.Generator) -> np.ndarray:
    """A tone per shape for the length of its event, a click at every event onset."""
    pieces = []
    for event, n in zip(events, lengths, strict=True):
        t = np.arange(int(n / FPS * SAMPLE_RATE)) / SAMPLE_RATE
        tone = 0.25 * np.sin(2 * np.pi * TONES[event["shape"]] * t)
        click = np.zeros_like(tone)
        width = min(400, click.size)
        click[:width] = 0.5 * rng.standard_normal(width) * np.linspace(1, 0, width)
        pieces.append(tone + click)
    return np.concatenate(pieces).astype(np.float32)


def describe(event: dict) -> str:
    return f"a {event['colour']} {event['shape']} moves {event['direction']}"


def captions_for(events: list[dict]) -> tuple[list[str], str]:
    """All captions of a clip (full first) and its test sentence (names two events)."""
    parts = [describe(e) for e in events]
    full = "first " + ", then ".join(parts)
    if len(events) == 2:
        return [full, *parts], full
    test = f"{parts[0]} and later {parts[2]}"
    return [full, *parts, test], test


def sample_clip(rng: np.random.Generator) -> tuple[list[dict], list[int]]:
    count = int(rng.integers(2, 4))
    events = []
    while len(events) < count:
        e = {"colour": str(rng.choice(list(COLOURS))), "shape": str(rng.choice(SHAPES)),
             "direction": str(rng.choice(DIRECTIONS))}  # fmt: skip
        if all((e["colour"], e["shape"]) != (o["colour"], o["shape"]) for o in events):
            events.append(e)
    total = int(rng.integers(2 * FPS, 4 * FPS + 1))
    weights = rng.dirichlet(np.full(count, 1.5))
    lengths = np.maximum(3, np.round(weights * total)).astype(int).tolist()
    return events, lengths


def write_world(out: str | Path, seed: int = 0, train: int = 400, val: int = 50,
                test: int = 100, size: int = 32) -> Path:  # fmt: skip
    """Write the world under ``out`` in the MSR-VTT layout; deterministic for ``seed``."""
    out = Path(out)
    rng = np.random.default_rng(seed)
    splits = [("train", train), ("validate", val), ("test", test)]
    videos, sentences, jsfusion = [], [], []
    total = sum(n for _, n in splits)
    progress = tqdm(total=total, desc="synth retrieval", unit="clip")
    n = 0
    for split, count in splits:
        for _ in range(count):
            video_id = f"video{n}"
            events, lengths = sample_clip(rng)
            background = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
            frames = render_clip(events, lengths, size, background)
            audio = render_audio(events, lengths, rng) if rng.random() > 1 / 6 else None
            write_video(out / "videos/all" / f"{video_id}.mp4", frames, fps=FPS, audio=audio)
            caps, test_sentence = captions_for(events)
            videos.append({
                "category": int(rng.integers(20)), "url": f"synthetic://{seed}/{video_id}",
                "video_id": video_id, "start time": 0.0, "end time": len(frames) / FPS,
                "split": split, "id": n,
            })  # fmt: skip
            for cap in caps:
                sentences.append({"caption": cap, "video_id": video_id, "sen_id": len(sentences)})
            if split == "test":
                jsfusion.append((video_id, test_sentence, n))
            n += 1
            progress.update()
    progress.close()
    info = {"contributor": "tessera synthetic world", "version": "1.0", "seed": seed,
            "description": "moving shapes with tones, MSR-VTT layout"}  # fmt: skip
    (out / "MSRVTT_data.json").write_text(
        json.dumps({"info": info, "videos": videos, "sentences": sentences})
    )
    train_ids = [v["video_id"] for v in videos if v["split"] == "train"]
    for name, ids in (("9k", train_ids), ("7k", train_ids[: int(len(train_ids) * 7010 / 9000)])):
        with open(out / f"MSRVTT_train.{name}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["video_id"])
            writer.writerows([[i] for i in ids])
    with open(out / "MSRVTT_JSFUSION_test.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["key", "vid_key", "video_id", "sentence"])
        for i, (video_id, sentence, number) in enumerate(jsfusion):
            writer.writerow([f"ret{i}", f"msr{number}", video_id, sentence])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tessera retrieval synth", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train", type=int, default=400)
    parser.add_argument("--val", type=int, default=50)
    parser.add_argument("--test", type=int, default=100)
    parser.add_argument("--size", type=int, default=32, help="frame size in pixels (even)")
    args = parser.parse_args(argv)
    write_world(args.out, args.seed, args.train, args.val, args.test, args.size)
    print(json.dumps({"out": args.out, "seed": args.seed, "train": args.train, "val": args.val,
                      "test": args.test}))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
