"""Synthetic speech-separation world in the Libri2Mix layout, spoken by espeak-ng.

Every speaker is an espeak-ng voice (accent + voice variant) with its own pitch, word gap
and speaking rate. Splits use disjoint voice variants, so val/test speakers are never heard in
training. Each mixture sums K utterances of K speakers with different variants and pitch bands
(as male/female pairs dominate LibriMix), truncated to the shortest
("min" mode, as LibriMix), with the sources rescaled to a random SNR in [-5, 5] dB relative to
the first one, then jointly scaled to a random peak. Files and the metadata csv follow
``Libri{K}Mix/wav8k/min/{train-100,dev,test}/{mix_clean,s1..sK}`` and
``metadata/mixture_{split}_mix_clean.csv`` exactly.

Generation needs ``espeak-ng`` on PATH; reading a generated world does not.

    tessera separation synth --out DIR --seed 0 --train 400 --val 40 --test 40
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from scipy.signal import resample_poly
from tqdm import tqdm

from tessera.datamodules.common import atomic_write_text
from tessera.datamodules.separation.audio import write_audio

ACCENTS = ("en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc")
# Disjoint variant pools per split (fixed, independent of the seed).
VARIANTS = {
    "train-100": (
        "m1", "m2", "m4", "m5", "m7", "f1", "f3", "f5", "adam", "Alex", "Andy", "Annie",
        "benjamin", "boris", "caleb", "david", "ed", "edward", "Gene", "iven", "john", "linda",
        "max", "Michael", "paul", "pedro", "quincy", "rob", "robert", "steph", "travis", "zac",
    ),
    "dev": ("m3", "f2", "Alicia", "Denis", "Hugo", "norbert", "sandro", "shelby"),
    "test": ("m6", "f4", "Andrea", "belinda", "Lee", "Mario", "victor", "anika"),
}  # fmt: skip
SPLITS = {"train": "train-100", "val": "dev", "test": "test"}
# espeak-ng pitch (0-99) ranges; the talkers of one mixture come from different bands.
PITCH_BANDS = ((5, 30), (40, 60), (70, 95))
_VOCABULARY = (
    "the a one two three four five six seven eight nine ten red green blue yellow black white "
    "house tree river stone cloud water fire light night morning evening city garden window "
    "door table paper letter music story friend mother father sister brother teacher doctor "
    "quickly slowly always never often today tomorrow yesterday under over between behind "
    "runs walks sings reads writes opens closes finds keeps takes gives brings makes sees "
    "small large bright quiet happy early late cold warm heavy simple strange ancient golden "
    "seven hundred thousand number answer question problem reason moment picture kitchen "
    "airport station market village mountain island ocean forest winter summer autumn spring"
)
WORDS = tuple(_VOCABULARY.split())


@dataclass(frozen=True)
class Speaker:
    """An espeak-ng voice: ``accent+variant`` at a pitch (0-99), word gap (10 ms) and rate (wpm)."""

    accent: str
    variant: str
    pitch: int
    gap: int
    rate: int

    @property
    def name(self) -> str:
        return f"{self.accent}.{self.variant}.p{self.pitch}"


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def speak(speaker: Speaker, text: str, sample_rate: int) -> torch.Tensor:
    """Synthesise ``text`` with espeak-ng and resample it to ``sample_rate``; ``(T,)`` float32."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "utt.wav"
        cmd = [
            "espeak-ng", "-v", f"{speaker.accent}+{speaker.variant}", "-p", str(speaker.pitch),
            "-g", str(speaker.gap), "-s", str(speaker.rate), "-w", str(wav), text,
        ]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        if done.stderr.strip():
            raise RuntimeError(f"espeak-ng failed for voice {speaker.name}: {done.stderr.strip()}")
        data, rate = sf.read(str(wav), dtype="float32")
    # Polyphase resampling: ~50x faster than torchaudio's sinc kernel for 22050 -> 8000 Hz.
    g = math.gcd(rate, sample_rate)
    audio = torch.from_numpy(resample_poly(data, sample_rate // g, rate // g).astype(np.float32))
    nonzero = torch.nonzero(audio.abs() > 1e-4).flatten()  # trim leading/trailing silence
    if len(nonzero):
        audio = audio[int(nonzero[0]) : int(nonzero[-1]) + 1]
    return audio / audio.abs().max().clamp(min=1e-8)


def make_speakers(split: str, rng: np.random.Generator) -> list[list[Speaker]]:
    """``speakers[v][b]``: one speaker per voice variant ``v`` and pitch band ``b``."""
    return [
        [
            Speaker(
                accent=ACCENTS[int(rng.integers(len(ACCENTS)))],
                variant=variant,
                pitch=int(rng.integers(*band)),
                gap=int(rng.integers(0, 6)),
                rate=int(rng.integers(130, 200)),
            )
            for band in PITCH_BANDS
        ]
        for variant in VARIANTS[split]
    ]


def sentence(rng: np.random.Generator, words: tuple[int, int]) -> str:
    return " ".join(rng.choice(WORDS, size=int(rng.integers(*words))))


def make_split(
    out: Path,
    split: str,
    count: int,
    rng: np.random.Generator,
    sample_rate: int,
    num_spks: int,
    words: tuple[int, int],
) -> None:
    """Write ``count`` mixtures of one split and its metadata csv."""
    base = out / f"Libri{num_spks}Mix" / f"wav{sample_rate // 1000}k" / "min"
    speakers = make_speakers(split, rng)
    rows = []
    for i in tqdm(range(count), desc=f"synth {split}", unit="mix"):
        # K different variants in K different pitch bands, in random order.
        variants = rng.choice(len(VARIANTS[split]), size=num_spks, replace=False)
        bands = rng.choice(len(PITCH_BANDS), size=num_spks, replace=False)
        chosen = [speakers[v][b] for v, b in zip(variants, bands, strict=True)]
        utts = [speak(c, sentence(rng, words), sample_rate) for c in chosen]
        length = min(len(u) for u in utts)
        gains_db = np.concatenate([[0.0], rng.uniform(-5, 5, size=num_spks - 1)])
        pairs = zip(utts, gains_db, strict=True)
        sources = torch.stack([u[:length] / u[:length].std() * 10 ** (g / 20) for u, g in pairs])
        mix = sources.sum(0)
        scale = float(rng.uniform(0.3, 0.9)) / float(mix.abs().max())
        mixture_id = "_".join(c.name for c in chosen) + f"_{i:05d}"
        paths = {"mix_clean": base / split / "mix_clean" / f"{mixture_id}.wav"}
        write_audio(paths["mix_clean"], mix * scale, sample_rate)
        for k in range(num_spks):
            paths[f"s{k + 1}"] = base / split / f"s{k + 1}" / f"{mixture_id}.wav"
            write_audio(paths[f"s{k + 1}"], sources[k] * scale, sample_rate)
        rows.append(
            {"mixture_ID": mixture_id, "mixture_path": str(paths["mix_clean"].resolve())}
            | {f"source_{k + 1}_path": str(paths[f"s{k + 1}"].resolve()) for k in range(num_spks)}
            | {"length": length}
        )
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]) if rows else ["mixture_ID"])
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(base / "metadata" / f"mixture_{split}_mix_clean.csv", text.getvalue())


def generate(
    out: str | Path,
    seed: int = 0,
    train: int = 400,
    val: int = 40,
    test: int = 40,
    sample_rate: int = 8000,
    num_spks: int = 2,
    words: tuple[int, int] = (3, 7),
) -> Path:
    """Write a world to ``out`` (deterministic for ``seed``); returns ``out``.

    Raises:
        RuntimeError: espeak-ng is not installed.
    """
    if not espeak_available():
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
    if sample_rate not in (8000, 16000):
        raise ValueError(f"sample_rate must be 8000 or 16000, got {sample_rate}")
    if num_spks < 2 or num_spks > 3:
        raise ValueError(f"num_spks must be 2 or 3, got {num_spks}")
    out = Path(out)
    for n, (split, count) in enumerate((("train", train), ("val", val), ("test", test))):
        if count > 0:
            rng = np.random.default_rng([seed, n])
            make_split(out, SPLITS[split], count, rng, sample_rate, num_spks, words)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tessera separation synth",
        description="Write an espeak-ng speech-mixture world in the LibriMix layout.",
    )
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train", type=int, default=400)
    parser.add_argument("--val", type=int, default=40)
    parser.add_argument("--test", type=int, default=40)
    parser.add_argument("--sample-rate", type=int, default=8000, choices=(8000, 16000))
    parser.add_argument("--num-spks", type=int, default=2, choices=(2, 3))
    args = parser.parse_args(argv)
    try:
        generate(
            args.out, args.seed, args.train, args.val, args.test, args.sample_rate, args.num_spks
        )
    except RuntimeError as err:
        parser.exit(2, f"error: {err}\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
