"""Text-video retrieval layouts: MSR-VTT, MSVD (CLIP4Clip's files) and the generic format.

- ``write_msrvtt``: the files of the original MSR-VTT release as CLIP4Clip's
  ``msrvtt_data.zip`` ships them (https://github.com/ArrowLuo/CLIP4Clip#data-preparing,
  used by X-Pool's ``datasets/msrvtt_dataset.py``): ``MSRVTT_data.json`` with ``info``,
  ``videos`` (``category, url, video_id, start time, end time, split, id``) and
  ``sentences`` (``caption, video_id, sen_id``); ``MSRVTT_train.9k.csv`` /
  ``MSRVTT_train.7k.csv`` (column ``video_id``); ``MSRVTT_JSFUSION_test.csv``
  (``key,vid_key,video_id,sentence``, keys ``ret{i}``, vid_keys ``msr{N}``); videos
  ``videos/all/video{N}.mp4`` (H.264 + AAC; one video without an audio track, as some are).
- ``write_msvd``: CLIP4Clip's ``msvd_data.zip`` (from collaborative-experts'
  ``misc/datasets/msvd``): ``raw-captions.pkl`` = ``{video_id: [[token, ...], ...]}``,
  ``train_list.txt`` / ``val_list.txt`` / ``test_list.txt``, and the original
  ``YouTubeClips/{youtube id}_{start}_{end}.avi`` clips (no audio track).
- ``write_generic_csv``: the app's own format, ``{split}.csv`` with ``video_path,caption``.
"""

from __future__ import annotations

import csv
import json
import pickle
from pathlib import Path

import numpy as np

from tessera.datamodules.common.video import write_video

COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 200, 40),
    "blue": (30, 60, 230),
    "yellow": (230, 220, 30),
    "white": (240, 240, 240),
    "purple": (150, 40, 200),
}


def _clip(colour: str, frames: int = 12, size: int = 32, moving: bool = True) -> np.ndarray:
    """A square of ``colour`` moving right over a dark background."""
    out = np.full((frames, size, size, 3), 20, np.uint8)
    for f in range(frames):
        x = (f * (size // 2)) // max(1, frames - 1) if moving else size // 4
        out[f, size // 4 : size // 4 + size // 2, x : x + size // 2] = COLOURS[colour]
    return out


def _tone(seconds: float, freq: float, sample_rate: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _caption(colour: str, k: int) -> str:
    forms = ("a {} square moves right", "the {} box slides across", "{} shape moving")
    return forms[k % len(forms)].format(colour)


def write_msrvtt(root: str | Path, num_train: int = 5, num_test: int = 3, fps: int = 8) -> Path:
    """A few MSR-VTT videos: train ids in the 9k list (first ones also in the 7k list), test
    ids in JSFUSION (1k-A). Video numbers are spread like the real ids (not 0..N)."""
    root = Path(root)
    colours = list(COLOURS)
    numbers = [3 * i + 1 for i in range(num_train)] + [7010 + 5 * i for i in range(num_test)]
    videos, sentences = [], []
    for k, n in enumerate(numbers):
        video_id = f"video{n}"
        split = "train" if k < num_train else "test"
        videos.append({
            "category": k % 20, "url": f"https://www.youtube.com/watch?v=fixture{n:05d}",
            "video_id": video_id, "start time": 10.0 + k, "end time": 12.0 + k,
            "split": split, "id": n,
        })  # fmt: skip
        colour = colours[k % len(colours)]
        for j in range(3):
            sentences.append(
                {"caption": _caption(colour, j), "video_id": video_id, "sen_id": len(sentences)}
            )
        audio = None if k == 1 else _tone(1.5, 300 + 100 * k)
        write_video(root / "videos/all" / f"{video_id}.mp4", _clip(colour), fps=fps, audio=audio)
    info = {"contributor": "Microsoft MSM group", "data_created": "2016-04-14 14:30:20",
            "version": "1.0", "description": "MSR-VTT dataset", "year": "2016"}  # fmt: skip
    (root / "MSRVTT_data.json").write_text(
        json.dumps({"info": info, "videos": videos, "sentences": sentences})
    )
    train_ids = [v["video_id"] for v in videos if v["split"] == "train"]
    for name, ids in (("9k", train_ids), ("7k", train_ids[: max(1, len(train_ids) - 1)])):
        with open(root / f"MSRVTT_train.{name}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["video_id"])
            w.writerows([[i] for i in ids])
    with open(root / "MSRVTT_JSFUSION_test.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["key", "vid_key", "video_id", "sentence"])
        tests = [v for v in videos if v["split"] == "test"]
        for i, v in enumerate(tests):
            first = next(s for s in sentences if s["video_id"] == v["video_id"])
            w.writerow([f"ret{i}", f"msr{v['id']}", v["video_id"], first["caption"]])
    return root


def write_msvd(root: str | Path, splits: dict[str, int] | None = None, fps: int = 8) -> Path:
    """A few MSVD clips (``.avi``, no audio) with tokenised multi-captions and split lists."""
    root = Path(root)
    splits = splits or {"train": 4, "val": 2, "test": 3}
    colours = list(COLOURS)
    captions, k = {}, 0
    for split, count in splits.items():
        ids = []
        for _ in range(count):
            video_id = f"-{k:02d}wsuPCjDBc_{5 + k}_{15 + k}"
            colour = colours[k % len(colours)]
            write_video(root / "YouTubeClips" / f"{video_id}.avi", _clip(colour), fps=fps)
            captions[video_id] = [_caption(colour, j).split() for j in range(2 + k % 3)]
            ids.append(video_id)
            k += 1
        (root / f"{split}_list.txt").write_text("\n".join(ids) + "\n")
    with open(root / "raw-captions.pkl", "wb") as f:
        pickle.dump(captions, f)
    return root


def write_generic_csv(root: str | Path, splits: dict[str, int] | None = None) -> Path:
    """``{split}.csv`` (``video_path,caption``, two captions per video) and ``clips/*.mp4``."""
    root = Path(root)
    splits = splits or {"train": 4, "val": 2, "test": 2}
    colours = list(COLOURS)
    root.mkdir(parents=True, exist_ok=True)
    k = 0
    for split, count in splits.items():
        with open(root / f"{split}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["video_path", "caption"])
            for _ in range(count):
                colour = colours[k % len(colours)]
                rel = f"clips/{split}_{k}.mp4"
                write_video(root / rel, _clip(colour), fps=8, audio=_tone(1.5, 250 + 50 * k))
                w.writerows([[rel, _caption(colour, 0)], [rel, _caption(colour, 1)]])
                k += 1
    return root
