"""Readers (LibriMix, WSJ0-mix, lists, folders), crops, dynamic mixing, bad files."""

import logging

import numpy as np
import pytest
import soundfile as sf
import torch

from tessera.datamodules.common import DataError, SkippedItem, collate_skipping
from tessera.datamodules.separation.audio import read_audio
from tessera.datamodules.separation.datamodule import SeparationDataModule, pad_collate
from tessera.datamodules.separation.dataset import (
    DynamicMixingDataset,
    MixtureDataset,
    PredictDataset,
    folder_speakers,
)
from tessera.datamodules.separation.formats import (
    find_mixtures,
    read_librimix,
    read_list,
    read_wsj0mix,
)


def write(path, data, rate=8000, subtype=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, rate, subtype=subtype)
    return path


def fake_librimix(root, k=2, n=3, rate=8000, moved_from=None):
    """Libri{k}Mix/wav8k/min/{dev}/... with a metadata csv; paths as written elsewhere if
    ``moved_from`` (the corpus was copied after generation)."""
    base = root / f"Libri{k}Mix" / "wav8k" / "min"
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        srcs = rng.standard_normal((k, 800 + 10 * i)).astype(np.float32) * 0.1
        mid = f"{i}-a_{i}-b"
        write(base / "dev" / "mix_clean" / f"{mid}.wav", srcs.sum(0), rate)
        for j in range(k):
            write(base / "dev" / f"s{j + 1}" / f"{mid}.wav", srcs[j], rate)
        prefix = moved_from or (base / "dev")
        rows.append(
            [mid, f"{prefix}/mix_clean/{mid}.wav"]
            + [f"{prefix}/s{j + 1}/{mid}.wav" for j in range(k)]
            + [str(srcs.shape[1])]
        )
    header = ["mixture_ID", "mixture_path"] + [f"source_{j + 1}_path" for j in range(k)]
    meta = base / "metadata" / "mixture_dev_mix_clean.csv"
    meta.parent.mkdir(parents=True)
    meta.write_text("\n".join(",".join(r) for r in [header + ["length"], *rows]) + "\n")
    return base


@pytest.mark.parametrize("k", [2, 3])
def test_librimix_reader_any_speaker_count_and_moved_corpus(tmp_path, k):
    fake_librimix(tmp_path, k=k, moved_from="/old/machine/Libri2Mix/wav8k/min/dev")
    for root in (tmp_path, tmp_path / f"Libri{k}Mix", tmp_path / f"Libri{k}Mix/wav8k/min"):
        items = read_librimix(root, "val")  # "val" is LibriMix "dev"
        assert [i.item_id for i in items] == ["0-a_0-b", "1-a_1-b", "2-a_2-b"]
        assert all(len(i.sources) == k and i.mix.is_file() for i in items)
        assert all(s.is_file() for i in items for s in i.sources)
    ds = MixtureDataset(find_mixtures(tmp_path, "dev"), 8000, num_spks=k)
    item = ds[1]
    assert item["sources"].shape == (k, 810) and item["length"] == 810
    torch.testing.assert_close(item["mix"], item["sources"].sum(0), atol=1e-3, rtol=0)


def test_librimix_missing_split_names_the_csv(tmp_path):
    fake_librimix(tmp_path)
    with pytest.raises(DataError, match="mixture_test_mix_clean.csv"):
        read_librimix(tmp_path, "test")


def test_wsj0mix_reader(tmp_path):
    for name in ("a", "b"):
        for d in ("mix", "s1", "s2", "s3"):
            write(tmp_path / "tt" / d / f"{name}.wav", np.zeros(100, np.float32))
    items = read_wsj0mix(tmp_path, "test")
    assert [i.item_id for i in items] == ["a", "b"]
    assert [p.parent.name for p in items[0].sources] == ["s1", "s2", "s3"]
    assert find_mixtures(tmp_path, "test") == items


def test_list_reader_scp_and_csv(tmp_path):
    for n in ("m.wav", "x.wav", "y.wav"):
        write(tmp_path / n, np.zeros(100, np.float32))
    scp = tmp_path / "tt.scp"
    scp.write_text(f"{tmp_path}/m.wav {tmp_path}/x.wav {tmp_path}/y.wav\n\n")
    csv_file = tmp_path / "list.csv"
    csv_file.write_text("mix,s1,s2\nm.wav,x.wav,y.wav\n")
    for f in (scp, csv_file):
        (item,) = read_list(f)
        assert item.item_id == "m" and item.mix == tmp_path / "m.wav"
        assert item.sources == (tmp_path / "x.wav", tmp_path / "y.wav")


def test_plain_folder_for_prediction(tmp_path):
    write(tmp_path / "a" / "one.wav", np.zeros(100, np.float32))
    write(tmp_path / "two.flac", np.zeros(100, np.float32))
    items = find_mixtures(tmp_path)
    assert [i.item_id for i in items] == ["a_one", "two"] and all(not i.sources for i in items)


def test_resampling_is_logged_once(tmp_path, caplog):
    t = np.arange(16000) / 16000
    for i in range(2):
        write(tmp_path / f"{i}.wav", np.sin(2 * np.pi * 440 * t).astype(np.float32), 16000)
    with caplog.at_level(logging.WARNING):
        a, rate = read_audio(tmp_path / "0.wav", 8000)
        read_audio(tmp_path / "1.wav", 8000)
    assert rate == 8000 and a.shape == (8000,)
    assert (
        sum("resampling audio from 16000 Hz to 8000 Hz" in r.message for r in caplog.records) <= 1
    )
    spectrum = torch.fft.rfft(a).abs()
    assert abs(int(spectrum.argmax()) - 440) <= 1  # 1 Hz bins over 1 s: the tone survives


@pytest.mark.parametrize(
    "content, problem",
    [(b"garbage", "not a readable audio file"), (None, "file not found")],
)
def test_bad_file_is_named_and_skippable(tmp_path, content, problem):
    fake_librimix(tmp_path)
    items = find_mixtures(tmp_path, "dev")
    bad = items[1].sources[0]
    if content is None:
        bad.unlink()
    else:
        bad.write_bytes(content)
    with pytest.raises(DataError, match=problem) as err:
        MixtureDataset(items, 8000, 2)[1]
    assert str(bad) in str(err.value)
    skipped = MixtureDataset(items, 8000, 2, on_error="skip")[1]
    assert isinstance(skipped, SkippedItem) and skipped.item_id == items[1].item_id
    batch = collate_skipping(pad_collate)([MixtureDataset(items, 8000, 2)[0], skipped])
    assert batch["item_id"] == [items[0].item_id] and batch["skipped"][0]["reason"]


def test_bad_samples_are_refused(tmp_path):
    write(tmp_path / "nan.wav", np.array([0.1, np.nan, 0.2], np.float32), subtype="FLOAT")
    write(tmp_path / "empty.wav", np.zeros(0, np.float32))
    write(tmp_path / "many.wav", np.zeros((10, 4), np.float32))
    for name, match in (("nan", "NaN"), ("empty", "no samples"), ("many", "4 channels")):
        with pytest.raises(DataError, match=match):
            read_audio(tmp_path / f"{name}.wav")


def test_wrong_speaker_count_is_explained(tmp_path):
    fake_librimix(tmp_path, k=3)
    with pytest.raises(DataError, match="3 reference sources, expected 2"):
        MixtureDataset(find_mixtures(tmp_path, "dev"), 8000, 2)[0]


def test_crops_are_random_deterministic_and_padded(tmp_path):
    fake_librimix(tmp_path)
    items = find_mixtures(tmp_path, "dev")
    ds = MixtureDataset(items, 8000, 2, segment=0.05)  # 400 samples
    a, b = ds[0], ds[0]
    assert a["mix"].shape == (400,) and torch.equal(a["mix"], b["mix"])
    ds.epoch = 1
    assert not torch.equal(ds[0]["mix"], a["mix"])
    long = MixtureDataset(items, 8000, 2, segment=0.2)[0]  # 1600 > 800 samples: zero padded
    assert long["mix"].shape == (1600,) and long["length"] == 800 and not long["mix"][800:].any()


def test_dynamic_mixing_draws_distinct_speakers_at_bounded_snr(tmp_path):
    rng = np.random.default_rng(0)
    for spk in ("s100", "s200", "s300"):
        for u in range(2):
            write(tmp_path / spk / "ch1" / f"{u}.flac", rng.standard_normal(3000) * 0.1)
    files = folder_speakers(sorted(tmp_path.rglob("*.flac")), tmp_path)
    ds = DynamicMixingDataset(files, 8000, 2, segment=0.25, epoch_size=20, snr=5.0)
    for i in range(20):
        item = ds[i]
        torch.testing.assert_close(item["mix"], item["sources"].sum(0))
        rms = item["sources"].pow(2).mean(-1).sqrt()
        assert abs(20 * torch.log10(rms[1] / rms[0])) <= 5.0 + 1e-3
    assert torch.equal(ds[3]["mix"], ds[3]["mix"])
    with pytest.raises(ValueError, match="at least num_spks=2 speakers"):
        DynamicMixingDataset(files[:2], 8000, 2, segment=0.1)


def test_datamodule_batches_and_predict_items(tmp_path):
    fake_librimix(tmp_path)
    dm = SeparationDataModule(
        str(tmp_path), segment=0.05, batch_size=2, train_split="dev", val_split="dev"
    )
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["mix"].shape == (2, 400) and batch["sources"].shape == (2, 2, 400)
    val = next(iter(dm.val_dataloader()))
    assert val["mix"].shape == (1, 800)
    dm.hparams.predict_split = "dev"
    items = next(iter(dm.predict_dataloader()))["items"]
    assert items[0]["sample_rate"] == 8000 and items[0]["sources"].shape == (2, 800)
    dm.set_predict_filter(lambda item_id: item_id != "0-a_0-b")
    assert len(dm.predict_dataloader().dataset) == 2
    dm_mix = SeparationDataModule(
        str(tmp_path), segment=0.05, train_split="dev", dynamic_mixing=True, dm_epoch_size=5
    )
    dm_mix.setup("fit")
    assert len(dm_mix.datasets["train"]) == 5


def test_predict_dataset_keeps_the_file_rate(tmp_path):
    write(tmp_path / "m.wav", np.zeros((1600, 2), np.float32) + 0.1, 16000)
    with pytest.warns(UserWarning, match="stereo"):
        item = PredictDataset(find_mixtures(tmp_path))[0]
    assert item["sample_rate"] == 16000 and item["mix"].shape == (1600,)
