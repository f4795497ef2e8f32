"""The paper-doll world: deterministic, in the real layouts, front and back differ."""

import numpy as np
from PIL import Image

from tessera.datamodules.tryon import TryOnDataModule, TryOnDataset, list_records
from tessera.datamodules.tryon.synth import generate, main


def test_mvg_world_is_deterministic_and_views_differ(tmp_path):
    a = generate(tmp_path / "a", seed=4, train=2, val=0, test=1)
    b = generate(tmp_path / "b", seed=4, train=2, val=0, test=1)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for f in files[:20]:
        assert (a / f).read_bytes() == (b / f).read_bytes()
    assert not (a / "val").exists()
    records = list_records(a, "train")
    assert len(records) == 6 and [r.view for r in records[:3]] == [1, 2, 3]
    front = np.asarray(Image.open(records[0].garment_front), np.float32)
    back = np.asarray(Image.open(records[0].garment_back), np.float32)
    assert np.abs(front - back).mean() > 1.0  # the two sides carry different designs
    sample = TryOnDataset(records, (128, 96))[2]
    assert sample["use_back"] and 0.05 < float(sample["mask"].mean()) < 0.6


def test_only_scored_splits_read_the_counterfactual(tmp_path):
    """The back-to-front image feeds the back-view score; training batches leave it out."""
    world = generate(tmp_path / "w", seed=4, train=1, val=1, test=0, size=(32, 24))
    dm = TryOnDataModule(str(world), size=(32, 24), val_split="val")
    dm.setup("fit")
    assert "counterfactual" not in dm.datasets["train"][2]
    scored = dm.datasets["val"][2]
    assert scored["has_counterfactual"] and scored["counterfactual"].shape == (3, 32, 24)
    expected = np.asarray(Image.open(dm.datasets["val"].records[2].counterfactual), np.float32)
    assert abs(float(scored["counterfactual"].mean()) - expected.mean() / 255) < 1e-3


def test_vitonhd_world_through_the_cli(tmp_path, capsys):
    assert (
        main(
            [
                "--out",
                str(tmp_path),
                "--seed",
                "1",
                "--train",
                "2",
                "--val",
                "0",
                "--test",
                "2",
                "--layout",
                "vitonhd",
            ]
        )
        == 0
    )
    assert (tmp_path / "test_pairs.txt").read_text().split("\n")[0] == "00002_00.jpg 00003_00.jpg"
    for folder in (
        "image",
        "cloth",
        "cloth-mask",
        "image-parse-v3",
        "openpose_json",
        "openpose_img",
        "agnostic-v3.2",
        "image-parse-agnostic-v3.2",
    ):
        assert any((tmp_path / "test" / folder).iterdir())
    assert Image.open(next((tmp_path / "test" / "image-parse-v3").iterdir())).mode == "P"
    sample = TryOnDataset(list_records(tmp_path, "test", pairs="unpaired"), (64, 48))[0]
    assert sample["person"].shape == (3, 64, 48)
