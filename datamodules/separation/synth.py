"""Synthetic speech-separation world in the Libri2Mix layout, spoken by many kinds of voices.

Talkers are espeak-ng voices (accent + voice variant at a pitch, rate and word gap) and the
natural-speaker voices of flite (awb, rms) and festival (Italian, Czech, Finnish, Russian,
Catalan, Hindi, Marathi, Telugu), each festival/flite voice turned into several speakers by a
fixed speed factor (tempo, pitch and formants, as speed perturbation). Every utterance goes
through a random recording channel (:func:`~.augment.augment`: EQ / band-limiting, light
reverb, a noise floor, gain). Pitch ranges of the talkers of a mixture overlap as they do in
LibriMix (``pitch_bands=True`` forces them apart, the old, easier world). Splits use disjoint
voices, so val/test talkers are never heard in training; ``voices="english"`` speaks every
split with the held-out English festival/flite speakers (kal, kdl, slt), the local proxy of
natural recorded voices, never trained on.

Each mixture sums K utterances of K different voices, truncated to the shortest ("min" mode,
as LibriMix), with the sources rescaled to a random SNR in [-5, 5] dB relative to the first,
then jointly scaled to a random peak. Files, ids and the metadata csv follow LibriMix:
``Libri{K}Mix/wav8k/min/{train-100,dev,test}/{mix_clean,s1..sK}/<mixture_ID>.wav`` with
``mixture_ID`` = the utterance ids ``<speaker>-<chapter>-<utt>`` joined by ``_``, and
``metadata/mixture_{split}_mix_clean.csv``.

Generation needs ``espeak-ng``, ``flite`` and ``festival`` with the voices of
:data:`~.voices.PACKAGES` (``scripts/system-deps.sh``); reading a generated world does not.

    tessera separation synth --out DIR --seed 0 --train 400 --val 40 --test 40
"""

from __future__ import annotations

import argparse
import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from tessera.datamodules.common import atomic_write_text
from tessera.datamodules.separation import voices as V
from tessera.datamodules.separation.audio import write_audio
from tessera.datamodules.separation.augment import augment, change_speed

ACCENTS = ("en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc")
# Disjoint espeak-ng variant pools per split (fixed, independent of the seed).
VARIANTS = {
    "train-100": (
        "m1", "m2", "m4", "m5", "m7", "f1", "f3", "f5", "adam", "Alex", "Andy", "Annie",
        "benjamin", "boris", "caleb", "david", "ed", "edward", "Gene", "iven", "john", "linda",
        "max", "Michael", "paul", "pedro", "quincy", "rob", "robert", "steph", "travis", "zac",
    ),
    "dev": ("m3", "f2", "Alicia", "Denis", "Hugo", "norbert", "sandro", "shelby"),
    "test": ("m6", "f4", "Andrea", "belinda", "Lee", "Mario", "victor", "anika"),
}  # fmt: skip
NATURAL = {
    "train-100": V.FLITE_TRAIN + V.FESTIVAL_TRAIN,
    "dev": V.FESTIVAL_DEV,
    "test": V.FESTIVAL_TEST,
}
SPLITS = {"train": "train-100", "val": "dev", "test": "test"}
# Speaker-id ranges per split (LibriSpeech-style integer ids, unique over the world).
SPEAKER_ID_BASE = {"train-100": 1000, "dev": 5000, "test": 6000, "english": 7000}
# espeak-ng pitch (0-99) bands, used only with pitch_bands=True.
PITCH_BANDS = ((5, 30), (40, 60), (70, 95))
SPEAKERS_PER_VOICE = 3
NATURAL_SHARE = 0.6  # probability that a talker is a natural (flite/festival) voice
WORDS = V.WORDS["en"]


@dataclass(frozen=True)
class Speaker:
    """One talker: a voice plus its fixed speaking style (espeak-ng ``pitch`` 0-99, word
    ``gap`` in 10 ms, ``rate`` in wpm; flite/festival ``stretch`` and ``speed`` factors)."""

    speaker_id: int
    voice: V.Voice
    pitch: int = 50
    gap: int = 0
    rate: int = 160
    stretch: float = 1.0
    speed: float = 1.0
    band: int = 0
    options: dict = field(default_factory=dict, compare=False, hash=False)


def espeak_available() -> bool:
    return V.engine_available("espeak-ng")


def missing_voices(voices: str = "all") -> list[str]:
    """Debian packages (or engines) a world of ``voices`` needs that are not installed."""
    needed = [] if voices == "english" else [V.Voice("espeak-ng", "en")]
    if voices != "espeak":
        pools = [V.HELD_OUT_ENGLISH] if voices == "english" else list(NATURAL.values())
        needed += [v for pool in pools for v in pool]
    return sorted({v.package or v.engine for v in needed if not V.available(v)})


def make_speakers(
    split: str, rng: np.random.Generator, voices: str = "all", pitch_bands: bool = False
) -> tuple[list[Speaker], list[Speaker]]:
    """``(espeak-ng speakers, natural-voice speakers)`` of a split.

    ``voices``: ``all``, ``espeak`` (no natural voices) or ``english`` (only the held-out
    English festival/flite speakers)."""
    base = SPEAKER_ID_BASE["english" if voices == "english" else split]
    espeak: list[Speaker] = []
    natural: list[Speaker] = []
    if voices != "english":
        for variant in VARIANTS[split]:
            for b in range(SPEAKERS_PER_VOICE):
                band = PITCH_BANDS[b] if pitch_bands else (0, 100)
                voice = V.Voice(
                    "espeak-ng", f"{ACCENTS[int(rng.integers(len(ACCENTS)))]}+{variant}"
                )
                espeak.append(
                    Speaker(
                        base + len(espeak), voice, pitch=int(rng.integers(*band)),
                        gap=int(rng.integers(0, 6)), rate=int(rng.integers(130, 200)), band=b,
                    )
                )  # fmt: skip
    pool = {"all": NATURAL[split], "espeak": (), "english": V.HELD_OUT_ENGLISH}[voices]
    for voice in pool:
        for _ in range(SPEAKERS_PER_VOICE):
            natural.append(
                Speaker(
                    base + 500 + len(natural), voice, stretch=float(rng.uniform(0.85, 1.2)),
                    speed=float(rng.uniform(0.88, 1.14)),
                )
            )  # fmt: skip
    return espeak, natural


def choose_talkers(
    espeak: list[Speaker],
    natural: list[Speaker],
    num_spks: int,
    rng: np.random.Generator,
    pitch_bands: bool,
) -> list[Speaker]:
    """``num_spks`` talkers of different voices (and, with ``pitch_bands``, different bands)."""
    chosen: list[Speaker] = []
    bands = list(rng.permutation(len(PITCH_BANDS)))
    while len(chosen) < num_spks:
        use_natural = natural and (not espeak or rng.random() < NATURAL_SHARE)
        pool = natural if use_natural else espeak
        candidate = pool[int(rng.integers(len(pool)))]
        if any(c.voice.name == candidate.voice.name for c in chosen):
            continue
        if pitch_bands and not use_natural:
            band = bands[len(chosen)]
            candidate = next(s for s in espeak if s.voice == candidate.voice and s.band == band)
        chosen.append(candidate)
    return chosen


def render(plan: list[list[tuple[Speaker, str]]], sample_rate: int) -> list[list[np.ndarray]]:
    """Synthesise every ``(speaker, text)`` of every planned mixture, one call per voice."""
    by_voice: dict[V.Voice, list[tuple[int, int]]] = {}
    for i, talkers in enumerate(plan):
        for k, (speaker, _) in enumerate(talkers):
            by_voice.setdefault(speaker.voice, []).append((i, k))
    audio: list[list[np.ndarray | None]] = [[None] * len(t) for t in plan]
    for voice, slots in tqdm(by_voice.items(), desc="synthesise", unit="voice", leave=False):
        requests = []
        for i, k in slots:
            s, text = plan[i][k]
            requests.append(
                (text, {"pitch": s.pitch, "gap": s.gap, "rate": s.rate, "stretch": s.stretch})
            )
        for (i, k), wave in zip(slots, V.synthesize(voice, requests, sample_rate), strict=True):
            audio[i][k] = change_speed(wave, plan[i][k][0].speed)
    return audio


def make_split(
    out: Path,
    split: str,
    count: int,
    rng: np.random.Generator,
    sample_rate: int,
    num_spks: int,
    words: tuple[int, int],
    voices: str = "all",
    pitch_bands: bool = False,
    augmentation: bool = True,
    chapter: int = 0,
) -> None:
    """Write ``count`` mixtures of one split and its metadata csv."""
    base = out / f"Libri{num_spks}Mix" / f"wav{sample_rate // 1000}k" / "min"
    espeak, natural = make_speakers(split, rng, voices, pitch_bands)
    plan = []
    for _ in range(count):
        talkers = choose_talkers(espeak, natural, num_spks, rng, pitch_bands)
        plan.append([(t, V.sentence(rng, t.voice.language, words)) for t in talkers])
    rendered = render(plan, sample_rate)
    rows = []
    for i, (talkers, utts) in enumerate(tqdm(list(zip(plan, rendered, strict=True)),
                                             desc=f"synth {split}", unit="mix")):  # fmt: skip
        if augmentation:
            utts = [augment(u, rng, sample_rate) for u in utts]
        length = min(len(u) for u in utts)
        gains_db = np.concatenate([[0.0], rng.uniform(-5, 5, size=num_spks - 1)])
        sources = torch.stack(
            [
                torch.from_numpy(u[:length] / max(float(u[:length].std()), 1e-8) * 10 ** (g / 20))
                for u, g in zip(utts, gains_db, strict=True)
            ]
        ).float()
        mix = sources.sum(0)
        scale = float(rng.uniform(0.3, 0.9)) / float(mix.abs().max())
        utt_ids = [f"{t.speaker_id}-{chapter}-{i * num_spks + k:04d}" for k, (t, _) in
                   enumerate(talkers)]  # fmt: skip
        mixture_id = "_".join(utt_ids)
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
    voices: str = "all",
    pitch_bands: bool = False,
    augmentation: bool = True,
) -> Path:
    """Write a world to ``out`` (deterministic for ``seed``); returns ``out``.

    Args:
        voices: ``all`` (espeak-ng + natural voices), ``espeak`` (espeak-ng only) or
            ``english`` (held-out English festival/flite speakers in every split).
        pitch_bands: give the talkers of a mixture different espeak-ng pitch bands.
        augmentation: pass every utterance through a random recording channel.

    Raises:
        RuntimeError: a synthesiser or voice the world needs is not installed.
    """
    if voices not in ("all", "espeak", "english"):
        raise ValueError(f"voices must be 'all', 'espeak' or 'english', got {voices!r}")
    if sample_rate not in (8000, 16000):
        raise ValueError(f"sample_rate must be 8000 or 16000, got {sample_rate}")
    if num_spks < 2 or num_spks > 3:
        raise ValueError(f"num_spks must be 2 or 3, got {num_spks}")
    missing = missing_voices(voices)
    if missing:
        raise RuntimeError(
            f"missing speech synthesisers/voices: {' '.join(missing)} "
            "(bash scripts/system-deps.sh installs them; or use voices='espeak')"
        )
    out = Path(out)
    for n, (split, count) in enumerate((("train", train), ("val", val), ("test", test))):
        if count > 0:
            rng = np.random.default_rng([seed, n])
            make_split(
                out, SPLITS[split], count, rng, sample_rate, num_spks, words, voices,
                pitch_bands, augmentation, chapter=seed,
            )  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tessera separation synth",
        description="Write a synthetic speech-mixture world in the LibriMix layout.",
    )
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train", type=int, default=400)
    parser.add_argument("--val", type=int, default=40)
    parser.add_argument("--test", type=int, default=40)
    parser.add_argument("--sample-rate", type=int, default=8000, choices=(8000, 16000))
    parser.add_argument("--num-spks", type=int, default=2, choices=(2, 3))
    parser.add_argument(
        "--voices", default="all", choices=("all", "espeak", "english"),
        help="english: only the held-out English festival/flite speakers (evaluation only)",
    )  # fmt: skip
    parser.add_argument("--pitch-bands", action="store_true", help="force pitch ranges apart")
    parser.add_argument("--no-augmentation", action="store_true")
    args = parser.parse_args(argv)
    try:
        generate(
            args.out, args.seed, args.train, args.val, args.test, args.sample_rate, args.num_spks,
            voices=args.voices, pitch_bands=args.pitch_bands,
            augmentation=not args.no_augmentation,
        )  # fmt: skip
    except RuntimeError as err:
        parser.exit(2, f"error: {err}\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
