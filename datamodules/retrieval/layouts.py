"""Readers of the text-video retrieval layouts: MSR-VTT, MSVD (as CLIP4Clip has it), generic.

Every reader returns the videos of one split as :class:`VideoItem` (id, file, captions).

- **MSR-VTT** (Xu et al., CVPR 2016; the files of CLIP4Clip's ``msrvtt_data.zip`` used by
  X-Pool): ``MSRVTT_data.json`` of the original release (``videos``: ``video_id``,
  ``category``, ``url``, ``start time``, ``end time``, ``split``, ``id``; ``sentences``:
  ``caption``, ``video_id``, ``sen_id``), ``MSRVTT_train.9k.csv`` / ``MSRVTT_train.7k.csv``
  (column ``video_id``), ``MSRVTT_JSFUSION_test.csv`` (``key,vid_key,video_id,sentence``,
  the 1k-A test set), videos ``videos/all/video{N}.mp4``. Splits: ``train`` = the 9k (or 7k)
  list with all of each video's sentences; ``test`` and ``val`` = 1k-A with the JSFUSION
  sentence of each video (X-Pool and CLIP4Clip validate on it too); ``test_full`` /
  ``validate_full`` = the json's ``test`` / ``validate`` videos with all their sentences.
- **MSVD** (Chen & Dolan, 2011) as CLIP4Clip lays it out: ``raw-captions.pkl``
  (``{video_id: [[token, ...], ...]}``), ``{train,val,test}_list.txt`` (one id per line),
  ``YouTubeClips/{video_id}.avi``. Every caption of a video is kept (multi-caption test).
- **Generic** (users' own data): ``{split}.csv`` or ``captions.csv`` with columns
  ``video_path,caption`` (one row per caption, an optional ``split`` column, paths relative
  to the csv's folder), or ``{split}.json`` / ``captions.json`` mapping a video path to a
  caption or a list of captions.
"""

from __future__ import annotations

import csv
import json
import pickle
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from tessera.datamodules.common import DataError

LAYOUTS = ("auto", "msrvtt", "msvd", "generic")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v")


@dataclass(frozen=True)
class VideoItem:
    """One video of a split with its captions (empty for unlabelled prediction folders)."""

    video_id: str
    path: Path
    captions: tuple[str, ...] = ()


def detect_layout(root: str | Path) -> str:
    """``msrvtt``, ``msvd`` or ``generic`` from the files at ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "dataset folder does not exist", "pass --data.data_dir DIR")
    if (root / "MSRVTT_data.json").is_file() or (root / "MSRVTT_JSFUSION_test.csv").is_file():
        return "msrvtt"
    if (root / "raw-captions.pkl").is_file():
        return "msvd"
    return "generic"


def read_split(
    root: str | Path, split: str, layout: str = "auto", msrvtt_train: str = "9k"
) -> list[VideoItem]:
    """The videos of ``split`` in ``layout`` (``auto`` detects it), files checked to exist.

    Raises:
        DataError: missing annotation or video files, unknown split, or an empty split.
    """
    root = Path(root)
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    layout = detect_layout(root) if layout == "auto" else layout
    if layout == "msrvtt":
        items = read_msrvtt(root, split, msrvtt_train)
    elif layout == "msvd":
        items = read_msvd(root, split)
    else:
        items = read_generic(root, split)
    if not items:
        raise DataError(root, f"split {split!r} of the {layout} layout has no videos")
    missing = [i for i in items if not i.path.is_file()]
    if missing:
        raise DataError(
            missing[0].path,
            f"video file missing ({len(missing)} of {len(items)} videos of split {split!r} "
            f"are missing)",
            "put the videos where the layout expects them (see docs/apps/retrieval.md)",
        )
    return items


def _msrvtt_video(root: Path, video_id: str) -> Path:
    for folder in ("videos/all", "videos"):
        path = root / folder / f"{video_id}.mp4"
        if path.is_file():
            return path
    return root / "videos/all" / f"{video_id}.mp4"


def _read_csv(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    if not path.is_file():
        raise DataError(path, "annotation file missing", "use the files of msrvtt_data.zip")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        fields = [c.strip() for c in reader.fieldnames or []]
        absent = [c for c in columns if c not in fields]
        if absent:
            raise DataError(path, f"missing column(s) {absent}; found {fields}")
        return [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]


def read_msrvtt(root: str | Path, split: str, train_list: str = "9k") -> list[VideoItem]:
    """MSR-VTT ``train`` (9k/7k lists, all sentences), ``val``/``test`` (1k-A, JSFUSION
    sentence), ``test_full`` / ``validate_full`` (json split, all sentences)."""
    root = Path(root)
    if split in ("val", "test"):
        rows = _read_csv(root / "MSRVTT_JSFUSION_test.csv", ("video_id", "sentence"))
        return [
            VideoItem(r["video_id"], _msrvtt_video(root, r["video_id"]), (r["sentence"],))
            for r in rows
        ]
    if split not in ("train", "test_full", "validate_full"):
        raise DataError(
            root, f"unknown MSR-VTT split {split!r}",
            "use train, val, test (1k-A), test_full or validate_full",
        )  # fmt: skip
    data_file = root / "MSRVTT_data.json"
    if not data_file.is_file():
        raise DataError(data_file, "annotation file missing", "use the files of msrvtt_data.zip")
    try:
        data = json.loads(data_file.read_text(encoding="utf-8"))
        captions: dict[str, list[str]] = defaultdict(list)
        for sentence in data["sentences"]:
            captions[sentence["video_id"]].append(sentence["caption"].strip())
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise DataError(data_file, f"not the MSR-VTT annotation format ({err})") from err
    if split == "train":
        if train_list not in ("9k", "7k"):
            raise ValueError(f"msrvtt_train must be '9k' or '7k', got {train_list!r}")
        list_file = root / f"MSRVTT_train.{train_list}.csv"
        ids = [r["video_id"] for r in _read_csv(list_file, ("video_id",))]
    else:
        wanted = split.removesuffix("_full")
        ids = [v["video_id"] for v in data["videos"] if v.get("split") == wanted]
    no_caption = [i for i in ids if not captions.get(i)]
    if no_caption:
        raise DataError(
            data_file, f"no sentences for {len(no_caption)} video(s), e.g. {no_caption[0]}"
        )
    return [VideoItem(i, _msrvtt_video(root, i), tuple(captions[i])) for i in ids]


def read_msvd(root: str | Path, split: str) -> list[VideoItem]:
    """MSVD split from ``{split}_list.txt`` with every caption in ``raw-captions.pkl``."""
    root = Path(root)
    list_file = root / f"{split}_list.txt"
    if not list_file.is_file():
        raise DataError(list_file, f"split list for {split!r} missing", "use train, val or test")
    pkl = root / "raw-captions.pkl"
    try:
        with open(pkl, "rb") as f:
            raw = pickle.load(f)  # the CLIP4Clip/collaborative-experts file is a pickle
    except (OSError, pickle.UnpicklingError, EOFError) as err:
        raise DataError(pkl, f"cannot be read ({err})", "use msvd_data.zip's file") from err
    ids = [line.strip() for line in list_file.read_text().splitlines() if line.strip()]
    items = []
    for video_id in ids:
        caps = raw.get(video_id)
        if not caps:
            raise DataError(pkl, f"no captions for video {video_id!r} of {list_file.name}")
        text = tuple(" ".join(c) if isinstance(c, list | tuple) else str(c) for c in caps)
        items.append(VideoItem(video_id, root / "YouTubeClips" / f"{video_id}.avi", text))
    return items


def read_generic(root: str | Path, split: str) -> list[VideoItem]:
    """``{split}.csv`` / ``captions.csv`` (``video_path,caption[,split]``) or the json forms."""
    root = Path(root)
    captions: dict[str, list[str]] = defaultdict(list)
    for name in (f"{split}.csv", "captions.csv"):
        path = root / name
        if path.is_file():
            for row in _read_csv(path, ("video_path", "caption")):
                if name == "captions.csv" and row.get("split") and row["split"] != split:
                    continue
                captions[row["video_path"]].append(row["caption"])
            break
    else:
        for name in (f"{split}.json", "captions.json"):
            path = root / name
            if path.is_file():
                try:
                    mapping = json.loads(path.read_text(encoding="utf-8"))
                except json.JSONDecodeError as err:
                    raise DataError(path, f"invalid json ({err})") from err
                if not isinstance(mapping, dict):
                    raise DataError(path, "must map a video path to a caption or caption list")
                for video, caps in mapping.items():
                    captions[video].extend([caps] if isinstance(caps, str) else list(caps))
                break
        else:
            raise DataError(
                root,
                f"no annotations for split {split!r}",
                f"add {split}.csv (video_path,caption) or captions.json, or use MSR-VTT/MSVD",
            )
    empty = [v for v, c in captions.items() if not any(s.strip() for s in c)]
    if empty:
        raise DataError(root / empty[0], "has an empty caption")
    return [
        VideoItem(str(Path(video).with_suffix("")), root / video, tuple(c.strip() for c in caps))
        for video, caps in captions.items()
    ]


def list_videos(folder: str | Path) -> list[VideoItem]:
    """Every video file under ``folder`` (recursively, sorted); ids are relative paths
    without the suffix. For ``index`` and ``predict`` on unlabelled folders."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "video folder does not exist")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
    return [VideoItem(str(p.relative_to(folder).with_suffix("")), p) for p in files]
