"""Label/image readers: mmseg semantics, declared-class check, binary masks, bad files."""

import numpy as np
import pytest
from PIL import Image

from tessera.datamodules.common import DataError
from tessera.datamodules.segmentation.io import read_image, read_label, write_label


def _png(path, arr, mode=None):
    Image.fromarray(np.asarray(arr, dtype=np.uint8), mode=mode).save(path)
    return path


def test_palette_label_roundtrip(tmp_path):
    label = np.array([[0, 1, 2], [3, 255, 1]])
    write_label(tmp_path / "l.png", label)
    assert Image.open(tmp_path / "l.png").mode == "P"
    np.testing.assert_array_equal(read_label(tmp_path / "l.png", num_classes=4), label)


def test_values_outside_declared_classes_are_flagged(tmp_path):
    path = _png(tmp_path / "l.png", [[0, 1], [5, 255]])
    with pytest.raises(DataError, match=r"label values \[5\] are outside .* 0\.\.3"):
        read_label(path, num_classes=4)


def test_binary_0_255_mask_read_as_index_gets_a_hint(tmp_path):
    path = _png(tmp_path / "m.png", [[0, 255], [255, 0]])
    # 255 is ignore_index by default, so it is accepted; with another ignore it is flagged
    with pytest.raises(DataError, match="binary255"):
        read_label(path, num_classes=2, ignore_index=250)


def test_binary255_format(tmp_path):
    path = _png(tmp_path / "m.png", [[0, 255], [255, 0]])
    np.testing.assert_array_equal(
        read_label(path, num_classes=2, mask_format="binary255"), [[0, 1], [1, 0]]
    )
    bad = _png(tmp_path / "b.png", [[0, 128], [255, 0]])
    with pytest.raises(DataError, match="besides 0 and 255"):
        read_label(bad, num_classes=2, mask_format="binary255")


def test_reduce_zero_label_matches_mmseg(tmp_path):
    path = _png(tmp_path / "l.png", [[0, 1, 2], [3, 255, 150]])
    out = read_label(path, num_classes=150, reduce_zero_label=True)
    np.testing.assert_array_equal(out, [[255, 0, 1], [2, 255, 149]])
    hint = _png(tmp_path / "h.png", [[0, 1], [2, 3]])
    with pytest.raises(DataError, match="reduce_zero_label=True"):
        read_label(hint, num_classes=3)


def test_colour_mask_is_rejected(tmp_path):
    path = _png(tmp_path / "rgb.png", np.zeros((4, 4, 3)))
    with pytest.raises(DataError, match="one channel"):
        read_label(path, num_classes=2)


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
        read_label(tmp_path / "nope.png", num_classes=2)
