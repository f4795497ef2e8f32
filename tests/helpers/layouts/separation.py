"""Separation corpora as they ship: LibriMix, WSJ0-2mix and LibriSpeech trees.

- LibriMix (Cosentino et al. 2020, https://github.com/JorisCos/LibriMix,
  ``scripts/create_librimix_from_metadata.py``): ``Libri{K}Mix/wav{8k,16k}/{min,max}/
  {train-360,train-100,dev,test}/{mix_clean,mix_both,mix_single,s1..sK,noise}/<mixture_ID>.wav``
  where ``mixture_ID`` joins the LibriSpeech utterance ids ``<speaker>-<chapter>-<utt>`` of
  the sources with ``_``; ``metadata/mixture_<split>_<mix_type>.csv`` with columns
  ``mixture_ID,mixture_path,source_1_path,...,source_K_path[,noise_path],length`` (absolute
  paths of the machine that generated it; ``length`` in samples).
- WSJ0-2mix (Hershey et al. 2016, ``create-speaker-mixtures.zip`` / ``create_wav_2speakers.m``):
  ``2speakers/wav{8k,16k}/{min,max}/{tr,cv,tt}/{mix,s1,s2}/<utt1>_<snr1>_<utt2>_<snr2>.wav``
  with 8-character WSJ0 utterance ids whose first three characters are the speaker
  (e.g. ``01aa010b_0.97482_209a010p_-0.97482.wav``), relative SNR in dB with opposite signs.
- LibriSpeech (Panayotov et al. 2015, https://www.openslr.org/12):
  ``LibriSpeech/<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utt:04d>.flac`` plus
  ``<speaker>-<chapter>.trans.txt``; the single-speaker corpus of dynamic mixing.

Audio is a voiced, speech-like signal per speaker (a harmonic series at the speaker's pitch
with a syllable-rate envelope), enough for a few steps of training and for scoring.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf

# Real LibriSpeech speaker/chapter ids per LibriMix split (train-clean-360, train-clean-100,
# dev-clean, test-clean).
LIBRISPEECH_CHAPTERS = {
    "train-360": ((100, 121669), (1001, 134707), (1006, 135212), (1012, 133424)),
    "train-100": ((103, 1240), (1034, 121119), (1040, 133433), (1069, 133699)),
    "dev": ((84, 121123), (174, 50561), (251, 136532), (422, 122949)),
    "test": ((61, 70968), (121, 121726), (237, 126133), (260, 123286)),
}
WSJ0_SPEAKERS = {"tr": ("01a", "01b", "20a", "40n"), "cv": ("01c", "20b", "40o", "02c"),
                 "tt": ("050", "051", "22g", "440")}  # fmt: skip


def speech_like(rng: np.random.Generator, seconds: float, rate: int, pitch: float) -> np.ndarray:
    """A voiced signal: harmonics of a wavering ``pitch`` (Hz) under a 4 Hz syllable envelope."""
    t = np.arange(int(seconds * rate)) / rate
    f0 = pitch * (1 + 0.05 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voiced = sum(np.sin(h * phase) / h for h in range(1, int(0.45 * rate / pitch)))
    envelope = np.clip(np.sin(2 * np.pi * rng.uniform(3, 5) * t + rng.uniform(0, 6)), 0, None)
    audio = voiced * envelope + 0.01 * rng.standard_normal(len(t))
    return (0.1 * audio / np.abs(audio).max()).astype(np.float32)


def _write(path: Path, audio: np.ndarray, rate: int) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, rate, subtype="PCM_16")
    return str(path.resolve())


def _write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def write_librimix(
    root: str | Path,
    n_src: int = 2,
    sample_rate: int = 8000,
    mode: str = "min",
    splits: tuple[str, ...] = ("train-360", "train-100", "dev", "test"),
    per_split: int = 2,
    seconds: float = 1.0,
    seed: int = 0,
) -> Path:
    """Write ``per_split`` mixtures per split (``mix_clean``, ``mix_both``, ``s1..sK``,
    ``noise`` and both metadata csvs); returns the ``Libri{K}Mix`` folder."""
    rng = np.random.default_rng(seed)
    top = Path(root) / f"Libri{n_src}Mix"
    base = top / f"wav{sample_rate // 1000}k" / mode
    for split in splits:
        chapters = LIBRISPEECH_CHAPTERS[split]
        clean_rows, both_rows = [], []
        for i in range(per_split):
            picks = rng.choice(len(chapters), size=n_src, replace=False)
            utts = [f"{chapters[p][0]}-{chapters[p][1]}-{i:04d}" for p in picks]
            mixture_id = "_".join(utts)
            lengths = rng.uniform(0.8, 1.2, size=n_src) * seconds * sample_rate
            length = int(lengths.min() if mode == "min" else lengths.max())
            sources = np.zeros((n_src, length), np.float32)
            for k, p in enumerate(picks):
                voice = speech_like(rng, lengths[k] / sample_rate, sample_rate, 90 + 40 * int(p))
                sources[k, : min(length, len(voice))] = voice[:length]
            noise = (0.02 * rng.standard_normal(length)).astype(np.float32)
            folder = base / split
            paths = {f"source_{k + 1}_path": _write(folder / f"s{k + 1}" / f"{mixture_id}.wav",
                                                    sources[k], sample_rate)
                     for k in range(n_src)}  # fmt: skip
            noise_path = _write(folder / "noise" / f"{mixture_id}.wav", noise, sample_rate)
            clean = _write(folder / "mix_clean" / f"{mixture_id}.wav", sources.sum(0), sample_rate)
            both = _write(
                folder / "mix_both" / f"{mixture_id}.wav", sources.sum(0) + noise, sample_rate
            )
            clean_rows.append({"mixture_ID": mixture_id, "mixture_path": clean} | paths
                              | {"length": length})  # fmt: skip
            both_rows.append({"mixture_ID": mixture_id, "mixture_path": both} | paths
                             | {"noise_path": noise_path, "length": length})  # fmt: skip
        _write_csv(base / "metadata" / f"mixture_{split}_mix_clean.csv", clean_rows)
        _write_csv(base / "metadata" / f"mixture_{split}_mix_both.csv", both_rows)
    return top


def write_wsj0_2mix(
    root: str | Path,
    sample_rate: int = 8000,
    modes: tuple[str, ...] = ("min", "max"),
    per_split: int = 2,
    seconds: float = 1.0,
    seed: int = 0,
) -> Path:
    """Write ``per_split`` mixtures of ``tr``/``cv``/``tt`` per mode; returns ``2speakers``."""
    rng = np.random.default_rng(seed)
    top = Path(root) / "2speakers"
    for split, speakers in WSJ0_SPEAKERS.items():
        for i in range(per_split):
            a, b = rng.choice(len(speakers), size=2, replace=False)
            utts = [f"{speakers[a]}c01{i:02d}", f"{speakers[b]}o02{i:02d}"]
            snr = round(float(rng.uniform(0, 2.5)), 5)
            name = f"{utts[0]}_{snr:.5f}_{utts[1]}_{-snr:.5f}.wav"
            lengths = (rng.uniform(0.8, 1.2, size=2) * seconds * sample_rate).astype(int)
            voices = [speech_like(rng, n / sample_rate, sample_rate, 100 + 60 * int(s))
                      for n, s in zip(lengths, (a, b), strict=True)]  # fmt: skip
            voices[0] *= 10 ** (snr / 40)
            voices[1] *= 10 ** (-snr / 40)
            for mode in modes:
                length = int(lengths.min() if mode == "min" else lengths.max())
                sources = np.zeros((2, length), np.float32)
                for k, v in enumerate(voices):
                    sources[k, : min(length, len(v))] = v[:length]
                folder = top / f"wav{sample_rate // 1000}k" / mode / split
                _write(folder / "mix" / name, sources.sum(0), sample_rate)
                for k in range(2):
                    _write(folder / f"s{k + 1}" / name, sources[k], sample_rate)
    return top


def write_librispeech(
    root: str | Path,
    subset: str = "train-clean-100",
    speakers: tuple[tuple[int, int], ...] = LIBRISPEECH_CHAPTERS["train-100"],
    utterances: int = 2,
    seconds: float = 1.0,
    sample_rate: int = 16000,
    seed: int = 0,
) -> Path:
    """Write ``utterances`` flac files per ``(speaker, chapter)`` and the chapter transcripts;
    returns the subset folder."""
    rng = np.random.default_rng(seed)
    folder = Path(root) / "LibriSpeech" / subset
    for n, (speaker, chapter) in enumerate(speakers):
        chapter_dir = folder / str(speaker) / str(chapter)
        lines = []
        for u in range(utterances):
            utt = f"{speaker}-{chapter}-{u:04d}"
            audio = speech_like(rng, seconds, sample_rate, 90 + 35 * n)
            chapter_dir.mkdir(parents=True, exist_ok=True)
            sf.write(chapter_dir / f"{utt}.flac", audio, sample_rate)
            lines.append(f"{utt} HELLO WORLD")
        (chapter_dir / f"{speaker}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")
    return folder
