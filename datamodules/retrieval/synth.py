"""Synthetic text-video world in the MSR-VTT layout (the smoke test, not the product).

Each clip (3-5 s, 8 fps, rendered with PyAV) is a sequence of 3 or 4 *events* over a
background colour: in each, a shape (circle, square, triangle) of one colour slides across
the frame (left, right, up or down), leaving a fading trail behind it, so that a single
frame shows which way it moves (frame-level pooling is blind to frame order). Two events of
a clip never share both colour and shape, but often share one of them. Event lengths vary
(at least 15 % of the clip each, so eight evenly spaced frames see every event). The sound
track follows the events: each shape has its own tone, and an onset click marks each new
event; about one clip in six has no audio track.

Captions (MSR-VTT has 20 per video; here 7-11) are compositional: the whole clip ("first a
red circle moves left, then a blue square moves up, then ..."), every event alone ("a blue
square moves up") and every ordered pair ("a red circle moves left and later a green
triangle moves down"). X-Pool's premise holds by construction: the test sentence of each
clip (``MSRVTT_JSFUSION_test.csv``, 1k-A's role) names two of its 3-4 events, so it
describes a *subset* of the frames while the other events are distractors that look like
the content of other clips (same colours and shapes, other bindings). Mean pooling has to
match a caption against the average of all frames; text-conditioned pooling can attend to
the frames the caption describes.

Splits: ``train`` → ``MSRVTT_train.9k.csv`` (and a 7k subset), ``val`` → the json's
``validate`` videos (read as split ``validate_full``), ``test`` → JSFUSION + json ``test``.

    tessera retrieval synth --out world --seed 0 --train 400 --val 50 --test 100
"""

from __future__ import annotations

import argparse
import csv
import itertools
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


TRAIL = ((3, 0.2), (2, 0.35), (1, 0.55))  # (steps behind the shape, opacity)


def render_clip(events: list[dict], lengths: list[int], size: int, background) -> np.ndarray:
    """uint8 ``(sum(lengths), size, size, 3)``: each event's shape sliding in its direction,
    with a fading trail of earlier positions behind it."""
    frames = []
    r = size * 0.2
    step = size * 0.07
    unit = {"right": (1, 0), "left": (-1, 0), "down": (0, 1), "up": (0, -1)}
    back = np.asarray(background, np.float32)
    for event, n in zip(events, lengths, strict=True):
        dx, dy = unit[event["direction"]]
        colour = np.asarray(COLOURS[event["colour"]], np.float32)
        for i in range(n):
            along = r + i / max(1, n - 1) * (size - 2 * r) - size / 2  # -(size/2 - r)..+
            cx, cy = size / 2 + dx * along, size / 2 + dy * along
            frame = np.empty((size, size, 3), np.float32)
            frame[:] = back
            for behind, alpha in TRAIL:
                mask = _mask(event["shape"], size, cx - dx * behind * step,
                             cy - dy * behind * step, r)  # fmt: skip
                frame[mask] = alpha * colour + (1 - alpha) * back
            frame[_mask(event["shape"], size, cx, cy, r)] = colour
            frames.append(frame.round().astype(np.uint8))
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


def captions_for(events: list[dict], rng: np.random.Generator) -> tuple[list[str], str]:
    """All captions of a clip (whole clip, each event, each ordered pair of events) and its
    test sentence: a pair of events drawn at random (a subset of the clip)."""
    parts = [describe(e) for e in events]
    full = "first " + ", then ".join(parts)
    pairs = list(itertools.combinations(range(len(events)), 2))
    paired = [f"{parts[i]} and later {parts[j]}" for i, j in pairs]
    return [full, *parts, *paired], paired[int(rng.integers(len(paired)))]


def sample_clip(rng: np.random.Generator) -> tuple[list[dict], list[int]]:
    count = int(rng.integers(3, 5))
    events = []
    while len(events) < count:
        e = {"colour": str(rng.choice(list(COLOURS))), "shape": str(rng.choice(SHAPES)),
             "direction": str(rng.choice(DIRECTIONS))}  # fmt: skip
        if all((e["colour"], e["shape"]) != (o["colour"], o["shape"]) for o in events):
            events.append(e)
    total = int(rng.integers(3 * FPS, 5 * FPS + 1))
    shortest = int(np.ceil(0.15 * total))
    spare = rng.dirichlet(np.ones(count)) * (total - shortest * count)
    lengths = (shortest + np.floor(spare)).astype(int).tolist()
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
            caps, test_sentence = captions_for(events, rng)
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
    info = {"contributor": "tessera synthetic world", "version": "2.0", "seed": seed,
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
