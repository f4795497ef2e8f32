"""The espeak-ng world: LibriMix layout, determinism, disjoint voices per split, SNR range."""

import hashlib

import numpy as np
import pytest
import torch

from tessera.apps.separation.metrics import si_sdr
from tessera.datamodules.separation import synth
from tessera.datamodules.separation import voices as V
from tessera.datamodules.separation.dataset import MixtureDataset
from tessera.datamodules.separation.formats import read_librimix

pytestmark = pytest.mark.skipif(
    bool(synth.missing_voices()),
    reason=f"speech synthesisers missing ({synth.missing_voices()}): bash scripts/system-deps.sh",
)


def digest(root):
    files = sorted(p for p in root.rglob("*.wav"))
    return [
        (p.relative_to(root).as_posix(), hashlib.sha256(p.read_bytes()).hexdigest()) for p in files
    ]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return synth.generate(tmp_path_factory.mktemp("w"), seed=5, train=4, val=2, test=2)


def test_layout_and_metadata(world):
    base = world / "Libri2Mix" / "wav8k" / "min"
    assert sorted(p.name for p in (base / "metadata").iterdir()) == [
        "mixture_dev_mix_clean.csv", "mixture_test_mix_clean.csv",
        "mixture_train-100_mix_clean.csv",
    ]  # fmt: skip
    header = (base / "metadata" / "mixture_test_mix_clean.csv").read_text().splitlines()[0]
    assert header == "mixture_ID,mixture_path,source_1_path,source_2_path,length"
    items = read_librimix(world, "train")
    assert len(items) == 4
    ds = MixtureDataset(items, 8000, 2)
    for i in range(len(ds)):
        item = ds[i]
        torch.testing.assert_close(item["mix"], item["sources"].sum(0), atol=1e-3, rtol=0)
        levels = item["sources"].pow(2).mean(-1)
        assert abs(10 * torch.log10(levels[1] / levels[0])) <= 5.0 + 0.1
        assert item["mix"].abs().max() <= 0.9 + 1e-3
        # two different talkers: neither source explains the other
        assert si_sdr(item["sources"][0], item["sources"][1]) < 0


def test_deterministic_for_a_seed_and_split_sizes_independent(world, tmp_path):
    again = synth.generate(tmp_path / "again", seed=5, train=0, val=0, test=2)
    test_files = [d for d in digest(world) if "/test/" in d[0]]
    assert test_files == digest(again)
    other = synth.generate(tmp_path / "other", seed=6, train=0, val=0, test=2)
    assert digest(other) != digest(again)


def test_splits_use_disjoint_voices_and_never_the_held_out_english_ones(world):
    voices = {}
    for split in ("train-100", "dev", "test"):
        espeak, natural = synth.make_speakers(split, np.random.default_rng(0))
        voices[split] = {s.voice.name.split("+")[-1] for s in espeak} | {
            s.voice.name for s in natural}  # fmt: skip
    held_out = {v.name for v in V.HELD_OUT_ENGLISH}
    for a, b in (("train-100", "dev"), ("train-100", "test"), ("dev", "test")):
        assert not voices[a] & voices[b]
    assert not held_out & set().union(*voices.values())
    speakers = {}
    for split in ("train", "val", "test"):  # LibriSpeech-style ids name disjoint speakers
        speakers[split] = {
            u.split("-")[0] for m in read_librimix(world, split) for u in m.item_id.split("_")
        }
    assert not speakers["train"] & speakers["test"] and not speakers["train"] & speakers["val"]


def test_pitch_ranges_overlap_by_default():
    espeak, _ = synth.make_speakers("train-100", np.random.default_rng(0))
    pitches = [s.pitch for s in espeak]
    assert min(pitches) < 30 and max(pitches) > 70  # the full range, not bands per talker
    banded, _ = synth.make_speakers("train-100", np.random.default_rng(0), pitch_bands=True)
    assert all(synth.PITCH_BANDS[s.band][0] <= s.pitch < synth.PITCH_BANDS[s.band][1]
               for s in banded)  # fmt: skip


def test_sixteen_khz_and_three_talkers(tmp_path):
    world = synth.generate(tmp_path, seed=1, train=0, val=0, test=1, sample_rate=16000, num_spks=3)
    (item,) = read_librimix(world, "test", sample_rate=16000)
    assert len(item.sources) == 3 and "Libri3Mix/wav16k" in str(item.mix)


def test_cli_writes_a_world(tmp_path):
    assert synth.main(["--out", str(tmp_path), "--seed", "2", "--train", "0", "--val", "0",
                       "--test", "1"]) == 0  # fmt: skip
    assert len(read_librimix(tmp_path, "test")) == 1
