"""Label/image readers: mmseg semantics, declared-class check, label maps, binary masks in
every encoding, bad files."""

import numpy as np
import pytest
from PIL import Image

from tessera.datamodules.common import DataError
from tessera.datamodules.segmentation.io import (
    LabelSpec,
    read_binary_mask,
    read_image,
    read_label,
    write_label,
)


def _png(path, arr, mode=None):
    Image.fromarray(np.asarray(arr, dtype=np.uint8), mode=mode).save(path)
    return path


def test_palette_label_roundtrip(tmp_path):
    label = np.array([[0, 1, 2], [3, 255, 1]])
    write_label(tmp_path / "l.png", label)
    assert Image.open(tmp_path / "l.png").mode == "P"
    np.testing.assert_array_equal(read_label(tmp_path / "l.png", LabelSpec(4)), label)


def test_values_outside_declared_classes_are_flagged(tmp_path):
    path = _png(tmp_path / "l.png", [[0, 1], [5, 255]])
    with pytest.raises(DataError, match=r"label values \[5\] are outside .* 0\.\.3"):
        read_label(path, LabelSpec(4))


def test_binary_option_and_label_map_read_0_255_masks(tmp_path):
    path = _png(tmp_path / "m.png", [[0, 255], [255, 0]])
    want = [[0, 1], [1, 0]]
    np.testing.assert_array_equal(read_label(path, LabelSpec.build(2, binary=True)), want)
    np.testing.assert_array_equal(read_label(path, LabelSpec.build(2, label_map={255: 1})), want)
    bad = _png(tmp_path / "b.png", [[0, 128], [255, 0]])
    with pytest.raises(DataError, match=r"values \[128\]"):
        read_label(bad, LabelSpec.build(2, binary=True))


def test_label_map_with_default_maps_cityscapes_ids(tmp_path):
    path = _png(tmp_path / "ids.png", [[7, 8], [26, 3]])
    spec = LabelSpec.build(19, label_map={7: 0, 8: 1, 26: 13}, label_map_default=255)
    np.testing.assert_array_equal(read_label(path, spec), [[0, 1], [13, 255]])


def test_reduce_zero_label_matches_mmseg(tmp_path):
    path = _png(tmp_path / "l.png", [[0, 1, 2], [3, 255, 150]])
    out = read_label(path, LabelSpec(150, reduce_zero_label=True))
    np.testing.assert_array_equal(out, [[255, 0, 1], [2, 255, 149]])
    hint = _png(tmp_path / "h.png", [[0, 1], [2, 3]])
    with pytest.raises(DataError, match="reduce_zero_label: true"):
        read_label(hint, LabelSpec(3))


def test_colour_mask_is_rejected(tmp_path):
    path = _png(tmp_path / "rgb.png", np.zeros((4, 4, 3)))
    with pytest.raises(DataError, match="one channel"):
        read_label(path, LabelSpec(2))


@pytest.mark.parametrize("encoding", ["L255", "L01", "1bit", "RGB", "RGBA", "P"])
def test_grounding_masks_in_any_encoding_are_binarised(tmp_path, encoding):
    mask = np.array([[0, 1, 1], [0, 0, 1]], bool)
    path = tmp_path / "m.png"
    if encoding == "L255":
        Image.fromarray(mask.astype(np.uint8) * 255, "L").save(path)
    elif encoding == "L01":
        Image.fromarray(mask.astype(np.uint8), "L").save(path)
    elif encoding == "1bit":
        Image.fromarray(mask.astype(np.uint8) * 255, "L").convert("1").save(path)
    elif encoding == "P":
        img = Image.fromarray(mask.astype(np.uint8), "P")
        img.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
        img.save(path)
    else:
        rgb = np.repeat(mask[..., None].astype(np.uint8) * 255, len(encoding), axis=-1)
        if encoding == "RGBA":
            rgb[..., 3] = 255
        Image.fromarray(rgb, encoding).save(path)
    np.testing.assert_array_equal(read_binary_mask(path), mask.astype(np.int64))


@pytest.mark.parametrize("mode", ["L", "RGBA", "LA", "I;16"])
def test_grayscale_rgba_and_16bit_images_become_rgb(tmp_path, mode):
    rng = np.random.default_rng(0)
    if mode == "I;16":
        arr = rng.integers(0, 65535, (5, 6)).astype(np.uint16)
        Image.fromarray(arr).save(tmp_path / "x.png")
    else:
        shape = {"L": (5, 6), "RGBA": (5, 6, 4), "LA": (5, 6, 2)}[mode]
        Image.fromarray(rng.integers(0, 255, shape).astype(np.uint8), mode=mode).save(
            tmp_path / "x.png"
        )
    img = read_image(tmp_path / "x.png")
    assert img.shape == (5, 6, 3) and img.dtype == np.uint8
    if mode in ("L", "LA"):
        assert (img[..., 0] == img[..., 1]).all()


def test_unreadable_and_missing_files_name_the_file(tmp_path):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a png")
    with pytest.raises(DataError, match="junk.png: not a readable image"):
        read_image(junk)
    with pytest.raises(DataError, match="nope.png: label file not found"):
        read_label(tmp_path / "nope.png", LabelSpec(2))
