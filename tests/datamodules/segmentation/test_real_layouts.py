"""The dataset layouts as they ship (fixtures from ``helpers.layouts.segmentation``): what
each reads, the label scan (0/255 masks, values outside the classes, size mismatches, empty
splits, missing annotations; progress bar; cache), and the shipped configs loading them."""

import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from helpers.layouts import segmentation as layouts
from tessera.datamodules.common import DataError
from tessera.datamodules.segmentation import (
    GroundingDataModule,
    SemanticDataModule,
    grounding,
    scan,
)
from tessera.datamodules.segmentation.layouts import ADE20K_CLASSES, read_layout

CONFIGS = Path(__file__).parents[3] / "apps" / "segmentation" / "configs"


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TESSERA_CACHE_DIR", str(tmp_path / "cache"))


def _png(path):
    return np.array(Image.open(path)).astype(np.int64)


def test_ade20k_layout_reduces_zero_and_names_150_classes(tmp_path):
    root = layouts.write_ade20k(tmp_path)
    dm = SemanticDataModule(str(root), layout="ade20k")
    assert dm.num_classes == 150 == len(ADE20K_CLASSES) and dm.class_names[0] == "wall"
    sample = dm.build("val", False, "raise")[0]
    raw = _png(root / "annotations" / "validation" / "ADE_val_00000001.png")
    np.testing.assert_array_equal(sample["target"], np.where(raw == 0, 255, raw - 1))
    with pytest.raises(ValueError, match="num_classes=151 but the ade20k layout"):
        SemanticDataModule(str(root), layout="ade20k", num_classes=151)


def test_cityscapes_train_ids_and_the_raw_label_ids(tmp_path):
    with_ids = layouts.write_cityscapes(tmp_path / "a")
    raw = layouts.write_cityscapes(tmp_path / "b", train_ids=False)
    a = SemanticDataModule(str(with_ids), layout="cityscapes").build("val", False, "raise")
    b = SemanticDataModule(str(raw), layout="cityscapes").build("val", False, "raise")
    assert [i[0] for i in a.items] == ["frankfurt_000000_000019", "frankfurt_000001_000020"]
    assert a.items[0][2].name.endswith("_gtFine_labelTrainIds.png")
    assert b.items[0][2].name.endswith("_gtFine_labelIds.png")
    for n in range(2):  # labelIds mapped with the official table == converted labelTrainIds
        np.testing.assert_array_equal(a[n]["target"], b[n]["target"])
    assert set(np.unique(a[0]["target"]).tolist()) <= {0, 1, 2, 13, 255}


def test_voc_palette_labels_and_the_sbd_augmentation(tmp_path):
    root = layouts.write_voc(tmp_path, aug=True)
    dm = SemanticDataModule(str(root), layout="voc", train_split="aug")
    assert dm.num_classes == 21
    val = dm.build("val", False, "raise")
    assert val.items[0][2].parent.name == "SegmentationClass"
    assert 255 in np.unique(val[0]["target"])  # boundary pixels stay ignored
    aug = dm.build("aug", False, "raise")
    assert [i[2].parent.name for i in aug.items] == ["SegmentationClassAug"] * 4
    np.testing.assert_array_equal(
        aug[0]["target"], _png(root / "SegmentationClassAug" / f"{aug.items[0][0]}.png")
    )


def test_mmseg_custom_layout_detects_the_image_suffix(tmp_path):
    root = layouts.write_mmseg_custom(tmp_path, img_suffix=".jpg")
    dm = SemanticDataModule(str(root), num_classes=3)
    assert [p.suffix for _, p, _ in dm.build("train", True, "raise").items] == [".jpg"] * 3
    with pytest.raises(ValueError, match="needs num_classes"):
        SemanticDataModule(str(root))
    (root / "img_dir" / "train" / "extra.png").write_bytes(b"")
    with pytest.raises(DataError, match="several image suffixes"):
        read_layout(root, "train")


@pytest.mark.parametrize("layout", ["mmseg", "ade20k", "voc", "cityscapes", "isic"])
def test_binary_0_255_masks_are_an_error_with_the_fix_in_every_layout(tmp_path, layout):
    """The silent case: 255 is ignore_index, so 0/255 masks would drop every foreground
    pixel (and an all-background prediction would score mIoU 1). Each layout stops with the
    fix, and the ``binary`` option (or ``label_map``) reads them, in every layout."""
    writers = {
        "mmseg": lambda p: layouts.write_mmseg_custom(p, binary=True),
        "ade20k": layouts.write_ade20k,
        "voc": layouts.write_voc,
        "cityscapes": layouts.write_cityscapes,
        "isic": layouts.write_isic,
    }
    root = writers[layout](tmp_path)
    for split in ("train", "val"):
        for _, _, label in read_layout(root, split, layout).items:
            fg = _png(label) % 2 == 1
            Image.fromarray(np.where(fg, 255, 0).astype(np.uint8), "L").save(label)
    if layout != "isic":  # ISIC masks are binary: the layout says so
        options = {"num_classes": 2} if layout == "mmseg" else {}
        with pytest.raises(DataError, match="only the values 0 and 255.*binary: true"):
            SemanticDataModule(str(root), layout=layout, **options).build("train", True, "raise")
    dm = SemanticDataModule(str(root), layout=layout, binary=True, reduce_zero_label=False)
    assert dm.num_classes == 2
    assert set(dm.build("val", False, "raise")[0]["target"].unique().tolist()) <= {0, 1}
    if layout == "mmseg":
        mapped = SemanticDataModule(str(root), num_classes=2, label_map={255: 1})
        target = mapped.build("val", False, "raise")[0]["target"]
        assert set(target.unique().tolist()) <= {0, 1}


def test_scan_names_values_outside_the_classes_and_size_mismatches(tmp_path, capfd):
    root = layouts.write_mmseg_custom(tmp_path)  # values 0, 1, 2
    with pytest.raises(DataError, match=r"label maps of split 'train' have values \[2\]"):
        SemanticDataModule(str(root), num_classes=2).build("train", True, "raise")
    assert "scanning label maps" in capfd.readouterr().err  # progress bar
    label = root / "ann_dir" / "val" / "val_001.png"
    Image.fromarray(np.zeros((5, 24), np.uint8), "L").save(label)
    with pytest.raises(DataError, match=r"val_001.png: 1 label maps .* differ in size"):
        SemanticDataModule(str(root), num_classes=3).build("val", False, "raise")


def test_empty_split_and_missing_annotations(tmp_path):
    root = layouts.write_mmseg_custom(tmp_path)
    (root / "img_dir" / "test").mkdir()
    dm = SemanticDataModule(str(root), num_classes=3, predict_split="val")
    with pytest.raises(DataError, match="split 'test' is empty"):
        dm.build("test", False, "raise")
    for f in (root / "ann_dir" / "val").iterdir():
        f.unlink()
    (root / "ann_dir" / "val").rmdir()
    for stage in ("fit", "validate"):  # val split without labels
        with pytest.raises(DataError, match="has no annotations.*predict works without"):
            dm.build(dm.splits[stage] if stage == "validate" else "val", False, "raise")
    assert len(dm.build_predict()) == 2  # predict needs no labels
    isic = layouts.write_isic(tmp_path / "isic")
    dm = SemanticDataModule(str(isic), layout="isic")
    with pytest.raises(DataError, match="has no annotations"):
        dm.build("test", False, "raise")


def test_scan_is_cached_by_file_list_and_mtimes(tmp_path, monkeypatch):
    root = layouts.write_mmseg_custom(tmp_path)
    reads = []
    real = scan.read_label_file
    monkeypatch.setattr(scan, "read_label_file", lambda p: reads.append(p) or real(p))
    dm = SemanticDataModule(str(root), num_classes=3)
    dm.build("train", True, "raise")
    assert len(reads) == 3
    dm.build("train", True, "raise")
    assert len(reads) == 3  # unchanged files: nothing read
    label = root / "ann_dir" / "train" / "train_000.png"
    Image.fromarray(np.full((24, 24), 2, np.uint8), "L").save(label)
    os.utime(label, ns=(1, 1))
    dm.build("train", True, "raise")
    assert len(reads) == 6  # a changed file: rescanned
    with pytest.raises(DataError, match="values"):  # the current settings always apply
        SemanticDataModule(str(root), num_classes=2).build("train", True, "raise")
    assert len(reads) == 6


def test_vizwiz_as_released(tmp_path):
    root = layouts.write_vizwiz(tmp_path)
    dm = GroundingDataModule(str(root), size=16)
    train = dm.build("train", False, "raise")
    assert [i.item_id for i in train.items][:1] == ["VizWiz_train_00000000"]
    for n in (1, 2):  # stored as RGB and as 1-bit: binarised
        assert set(train[n]["target"].unique().tolist()) == {0, 1}
    with pytest.raises(DataError, match="the test split has none"):
        dm.build("test", False, "raise")
    test = dm.build_predict()  # default predict split: test, without masks
    assert len(test) == 2 and "target" not in test[0]


@pytest.mark.parametrize(
    ("dataset", "split_by", "splits"),
    [
        ("refcoco", "unc", ("train", "val", "testA", "testB")),
        ("refcoco+", "unc", ("train", "val", "testA", "testB")),
        ("refcocog", "umd", ("train", "val", "test")),
    ],
)
def test_refcoco_family_as_refer_lays_it_out(tmp_path, dataset, split_by, splits, monkeypatch):
    root = layouts.write_refcoco(tmp_path, dataset, split_by)
    grounding._instances.cache_clear()
    parses = []
    real = grounding.json.loads
    monkeypatch.setattr(grounding.json, "loads", lambda t: parses.append(1) or real(t))
    dm = GroundingDataModule(
        str(root), format="refcoco", refcoco_dataset=dataset, split_by=split_by
    )
    for split in splits:
        items = dm.items(split)
        assert len(items) == 6  # 2 images x (2 + 1 sentences)
        assert items[0].image.parent == root / "images" / "mscoco" / "images" / "train2014"
        assert items[0].image.is_file()
    assert len(parses) == 1  # instances.json parsed once for every split
    with pytest.raises(DataError, match="no refs in split 'testC'"):
        dm.items("testC")


def test_grefcoco_reads_no_target_and_multi_object_refs(tmp_path):
    root = layouts.write_grefcoco(tmp_path)
    dm = GroundingDataModule(str(root), format="grefcoco", size=32)
    ds = dm.build("val", False, "raise")
    by_text = {}
    for n, item in enumerate(ds.items):
        by_text.setdefault(item.text, []).append(int(ds[n]["target"].sum()))
    assert by_text["the dog"] == [0, 0]  # no target
    assert all(b > s > 0 for b, s in zip(by_text["both cats"], by_text["left cat"], strict=True))


def test_unrelated_question_comes_from_a_different_image(tmp_path):
    from tessera.apps.segmentation.cli import unrelated_donors
    from tessera.datamodules.segmentation.synth import generate

    root = layouts.write_grefcoco(tmp_path)
    items = GroundingDataModule(str(root), format="grefcoco").items("val")
    donors = unrelated_donors(items)
    assert all(items[d].image != item.image for item, d in zip(items, donors, strict=True))
    assert {items[d].image for d in donors} == {i.image for i in items}  # every image donates
    # the synthetic world: 3 questions per scene, as hard links of one image file
    world = generate(tmp_path / "w", 0, {"train": 0, "val": 3, "test": 0}, progress=False)
    items = GroundingDataModule(str(world / "grounding")).items("val")
    for item, d in zip(items, unrelated_donors(items), strict=True):
        assert not os.path.samefile(items[d].image, item.image)


@pytest.mark.parametrize(
    ("config", "writer", "split"),
    [
        ("semantic-resnet50.yaml", lambda p: layouts.write_ade20k(p).parent, "val"),
        ("semantic-resnet50-cityscapes.yaml", layouts.write_cityscapes, "val"),
    ],
)
def test_paper_configs_load_their_layouts_as_shipped(tmp_path, config, writer, split):
    args = dict(yaml.safe_load((CONFIGS / config).read_text())["data"]["init_args"])
    shipped = Path(args.pop("data_root"))
    root = writer(tmp_path)
    root = root / shipped.name if (root / shipped.name).is_dir() else root
    dm = SemanticDataModule(str(root), **{**args, "num_workers": 0})
    sample = dm.build(split, False, "raise")[0]
    assert sample["target"].shape == tuple(sample["orig_size"].tolist())
    long_side, short_side = max(args["scale"]), min(args["scale"])
    h, w = sample["img_size"].tolist()
    assert max(h, w) <= long_side and min(h, w) <= short_side
    assert abs(w / h - sample["orig_size"][1] / sample["orig_size"][0]) < 0.05  # aspect kept
