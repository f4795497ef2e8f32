"""MSR-VTT / MSVD / generic readers on fixtures in the exact layouts, samples and errors."""

import json
import shutil

import numpy as np
import pytest
import torch

from helpers.layouts import retrieval as layouts
from tessera.datamodules.common import DataError, SkippedItem
from tessera.datamodules.retrieval import RetrievalDataModule, detect_layout, read_split
from tessera.datamodules.retrieval.audio import log_mel
from tessera.datamodules.retrieval.cache import FrameCache, interval_grid
from tessera.datamodules.retrieval.dataset import VideoTextDataset


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    root = tmp_path_factory.mktemp("layouts")
    return {
        "msrvtt": layouts.write_msrvtt(root / "MSRVTT"),
        "msvd": layouts.write_msvd(root / "MSVD"),
        "generic": layouts.write_generic_csv(root / "mine"),
    }


def test_msrvtt_splits_follow_the_official_files(roots):
    root = roots["msrvtt"]
    assert detect_layout(root) == "msrvtt"
    data = json.loads((root / "MSRVTT_data.json").read_text())
    train = read_split(root, "train")
    assert [i.video_id for i in train] == [v["video_id"] for v in data["videos"][:5]]
    assert all(len(i.captions) == 3 for i in train)  # every sentence of a training video
    assert len(read_split(root, "train", msrvtt_train="7k")) == 4
    test = read_split(root, "test")  # 1k-A: the JSFUSION sentence only
    assert [len(i.captions) for i in test] == [1, 1, 1]
    assert test[0].path == root / "videos/all/video7010.mp4"
    assert [len(i.captions) for i in read_split(root, "test_full")] == [3, 3, 3]
    with pytest.raises(DataError, match="unknown MSR-VTT split"):
        read_split(root, "dev")


def test_msvd_and_generic(roots):
    msvd = read_split(roots["msvd"], "test")
    assert detect_layout(roots["msvd"]) == "msvd"
    assert [i.path.suffix for i in msvd] == [".avi"] * 3
    assert [len(i.captions) for i in msvd] == [2, 3, 4]  # all captions of each clip
    assert all(" " in c for i in msvd for c in i.captions)  # tokens joined into sentences
    generic = read_split(roots["generic"], "train")
    assert len(generic) == 4 and all(len(i.captions) == 2 for i in generic)


def test_missing_files_and_empty_split_are_named(roots, tmp_path):
    root = tmp_path / "MSRVTT"
    shutil.copytree(roots["msrvtt"], root)
    (root / "videos/all/video7015.mp4").unlink()
    with pytest.raises(DataError, match="video7015.mp4: video file missing"):
        read_split(root, "test")
    (root / "MSRVTT_train.9k.csv").write_text("video_id\n")
    with pytest.raises(DataError, match="no videos"):
        read_split(root, "train")
    with pytest.raises(DataError, match="no annotations for split 'train'"):
        read_split(tmp_path, "train")


def test_samples_train_and_eval(roots):
    items = read_split(roots["msrvtt"], "train")
    train = VideoTextDataset(items, num_frames=4, image_size=32, train=True, audio=True,
                             audio_frames=64, n_mels=32)  # fmt: skip
    sample = train[0]
    assert sample["frames"].shape == (4, 3, 32, 32) and sample["frames"].dtype == torch.float32
    assert sample["caption"] in items[0].captions
    assert sample["audio"].shape == (64, 32) and sample["audio_mask"].all()
    silent = train[1]  # the fixture's video without an audio track
    assert not silent["audio_mask"].any() and not silent["audio"].any()
    evaluation = VideoTextDataset(items, 4, 32)
    a, b = evaluation[0]["frames"], evaluation[0]["frames"]
    assert torch.equal(a, b) and evaluation[0]["captions"] == list(items[0].captions)


def test_corrupt_video_raises_or_is_skipped(roots, tmp_path):
    items = read_split(roots["msrvtt"], "test")
    bad = tmp_path / "video7010.mp4"
    bad.write_bytes(b"not a video at all" * 50)
    items[0] = type(items[0])(items[0].video_id, bad, items[0].captions)
    with pytest.raises(DataError, match="video7010.mp4"):
        VideoTextDataset(items, 4, 32)[0]
    skipped = VideoTextDataset(items, 4, 32, on_error="skip")[0]
    assert isinstance(skipped, SkippedItem) and "video7010.mp4" in skipped.reason


def test_frame_cache_reuses_decoded_frames(roots, tmp_path, monkeypatch):
    items = read_split(roots["msrvtt"], "test")
    cache = FrameCache(tmp_path / "cache", num_frames=4, per_interval=3, short_side=32)
    plain = VideoTextDataset(items, 4, 32)[0]["frames"]
    cached = VideoTextDataset(items, 4, 32, cache=cache)
    first = cached[0]["frames"]
    assert torch.allclose(first, plain)  # middle of each interval, as without the cache
    import tessera.datamodules.retrieval.cache as cache_module

    monkeypatch.setattr(cache_module, "read_frames", lambda *a, **k: pytest.fail("decoded"))
    assert torch.equal(cached[0]["frames"], first)
    assert interval_grid(12, 4, 3).tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11]]
    assert interval_grid(2, 4, 1).tolist() == [[0], [1], [1], [1]]


def test_log_mel_shapes_and_mask():
    wave = np.sin(np.arange(8000) / 3).astype(np.float32)  # 0.5 s
    feats, mask = log_mel(wave, num_frames=100, n_mels=40)
    assert feats.shape == (100, 40) and mask[:48].all() and not mask[52:].any()
    feats, mask = log_mel(None, 100, 40)
    assert not mask.any() and not feats.any()


def test_datamodule_loaders(roots):
    data = RetrievalDataModule(str(roots["msvd"]), num_frames=4, image_size=32, batch_size=2,
                               eval_batch_size=4)  # fmt: skip
    data.setup("fit")
    batch = next(iter(data.train_dataloader()))
    assert batch["frames"].shape == (2, 4, 3, 32, 32) and len(batch["caption"]) == 2
    val = next(iter(data.val_dataloader()))
    assert isinstance(val["captions"][0], list) and val["skipped"] == []
