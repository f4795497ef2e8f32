"""Readers for the on-disk layouts of separation corpora.

- LibriMix (Cosentino et al., 2020; ``JorisCos/LibriMix``):
  ``Libri{K}Mix/wav{8k,16k}/{min,max}/{train-100,train-360,dev,test}/{mix_clean,mix_both,
  mix_single,s1..sK,noise}/<mixture_ID>.wav`` and ``metadata/mixture_{split}_{mix_type}.csv``
  with columns ``mixture_ID,mixture_path,source_1_path,...,source_K_path,[noise_path],length``.
- WSJ0-2mix/3mix (Hershey et al., 2016): ``{2,3}speakers/wav{8k,16k}/{min,max}/{tr,cv,tt}/
  {mix,s1,s2[,s3]}/<utt1>_<snr1>_<utt2>_<snr2>.wav``; ``data`` may be any of these folders.
- A plain list (CVS ``.scp`` or ``.csv``): one mixture per line, ``mix s1 s2 ...`` separated by
  spaces or commas (an optional header row starting with ``mix`` is ignored; relative paths are
  relative to the list file).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from tessera.datamodules.common import DataError

LIBRIMIX_SPLITS = {"train": "train-100", "val": "dev", "dev": "dev", "test": "test"}
WSJ_SPLITS = {"train": "tr", "val": "cv", "dev": "cv", "test": "tt"}


@dataclass(frozen=True)
class Mixture:
    """One mixture: its id, mixture file and reference source files (empty when unknown)."""

    item_id: str
    mix: Path
    sources: tuple[Path, ...] = ()


def librimix_split_dir(root: str | Path, split: str, sample_rate: int = 8000, mode: str = "min"):
    """Folder ``.../wav{sr}k/{mode}`` holding the split folders and ``metadata/``.

    ``root`` may be that folder itself, a ``Libri{K}Mix`` folder or the folder containing it.
    When the corpus has no ``wav{sr}k`` folder at ``sample_rate``, the other rate's folder is
    used (its files are resampled on reading, which is logged).
    """
    root = Path(root)
    split_name = LIBRIMIX_SPLITS.get(split, split)
    rates = [f"wav{sample_rate // 1000}k", *(r for r in ("wav8k", "wav16k")
                                            if r != f"wav{sample_rate // 1000}k")]  # fmt: skip
    for n, rate in enumerate(rates):
        sub = Path(rate) / mode
        candidates = [root / sub, *sorted(p / sub for p in root.glob("Libri*Mix"))]
        if n == 0:
            candidates.insert(0, root)
        for c in candidates:
            if (c / "metadata").is_dir() or (c / split_name / "mix_clean").is_dir():
                return c
    return None


def _resolve(listed: str, split_dir: Path) -> Path:
    """A path from a LibriMix csv; if it does not exist (the corpus moved), use its last two
    components (``<subfolder>/<file>``) under the split folder."""
    path = Path(listed)
    if path.is_file():
        return path
    moved = split_dir / path.parent.name / path.name
    return moved if moved.is_file() else path


def read_librimix(
    root: str | Path,
    split: str,
    sample_rate: int = 8000,
    mode: str = "min",
    mix_type: str = "mix_clean",
) -> list[Mixture]:
    """Mixtures of one LibriMix split from its metadata csv (any number of sources)."""
    base = librimix_split_dir(root, split, sample_rate, mode)
    if base is None:
        raise DataError(root, f"no LibriMix wav{sample_rate // 1000}k/{mode} folder found")
    split_name = LIBRIMIX_SPLITS.get(split, split)
    meta = base / "metadata" / f"mixture_{split_name}_{mix_type}.csv"
    if not meta.is_file():
        raise DataError(meta, "LibriMix metadata csv not found", f"is '{split}' a split here?")
    split_dir = base / split_name
    with open(meta, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return []
    cols = sorted(
        (c for c in rows[0] if re.fullmatch(r"source_\d+_path", c)),
        key=lambda c: int(c.split("_")[1]),
    )
    missing = {"mixture_ID", "mixture_path"} - set(rows[0])
    if missing or not cols:
        raise DataError(meta, f"missing columns {sorted(missing) or 'source_i_path'}")
    return [
        Mixture(
            r["mixture_ID"],
            _resolve(r["mixture_path"], split_dir),
            tuple(_resolve(r[c], split_dir) for c in cols),
        )
        for r in rows
    ]


def wsj0mix_split_dir(root: str | Path, split: str, sample_rate: int = 8000, mode: str = "min"):
    """Folder ``{tr,cv,tt}`` of a WSJ0-mix tree: ``root`` may be the ``{min,max}`` folder, the
    ``wav8k``/``wav16k`` folder, ``2speakers``/``3speakers`` or the folder holding them."""
    root = Path(root)
    sub = Path(f"wav{sample_rate // 1000}k") / mode
    name = WSJ_SPLITS.get(split, split)
    candidates = [root, root / mode, root / sub, *sorted(p / sub for p in root.glob("*speakers"))]
    for c in candidates:
        if (c / name / "mix").is_dir():
            return c / name
    return None


def read_wsj0mix(
    root: str | Path, split: str, sample_rate: int = 8000, mode: str = "min"
) -> list[Mixture]:
    """Mixtures of a WSJ0-2mix/3mix split: every ``mix/*.wav`` with ``s1..sK`` of the same name."""
    split_dir = wsj0mix_split_dir(root, split, sample_rate, mode) or (
        Path(root) / WSJ_SPLITS.get(split, split)
    )
    if not (split_dir / "mix").is_dir():
        raise DataError(split_dir, "no 'mix' folder (expected {tr,cv,tt}/{mix,s1,s2})")
    spk_dirs = sorted(
        (p for p in split_dir.iterdir() if re.fullmatch(r"s\d+", p.name)),
        key=lambda p: int(p.name[1:]),
    )
    return [
        Mixture(mix.stem, mix, tuple(d / mix.name for d in spk_dirs))
        for mix in sorted((split_dir / "mix").glob("*.wav"))
    ]


def read_list(path: str | Path) -> list[Mixture]:
    """Mixtures from a ``.scp``/``.csv``/``.txt`` list of ``mix s1 s2 ...`` lines."""
    path = Path(path)
    items = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        fields = [f for f in re.split(r"[,\s]+", line.strip()) if f]
        if not fields or fields[0].startswith("#") or fields[0].lower() in ("mix", "mix_wav"):
            continue
        paths = [p if Path(p).is_absolute() else path.parent / p for p in map(Path, fields)]
        item_id = paths[0].stem
        if any(i.item_id == item_id for i in items[-1:]):
            item_id = f"{item_id}-{n}"
        items.append(Mixture(item_id, paths[0], tuple(paths[1:])))
    return items


def read_folder(root: str | Path) -> list[Mixture]:
    """Every audio file under ``root`` as a mixture without references (for prediction)."""
    root = Path(root)
    exts = {".wav", ".flac", ".ogg"}
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in exts)
    return [Mixture(str(p.relative_to(root).with_suffix("")).replace("/", "_"), p) for p in files]


def find_mixtures(
    data: str | Path,
    split: str = "test",
    sample_rate: int = 8000,
    mode: str = "min",
    mix_type: str = "mix_clean",
) -> list[Mixture]:
    """Detect the layout of ``data`` and list the mixtures of ``split``.

    Order of detection: list file, LibriMix tree, WSJ0-mix tree, plain folder of audio files.
    """
    data = Path(data)
    if data.is_file():
        return read_list(data)
    if not data.is_dir():
        raise DataError(data, "dataset path does not exist")
    if librimix_split_dir(data, split, sample_rate, mode) is not None:
        return read_librimix(data, split, sample_rate, mode, mix_type)
    if wsj0mix_split_dir(data, split, sample_rate, mode) is not None:
        return read_wsj0mix(data, split, sample_rate, mode)
    return read_folder(data)
