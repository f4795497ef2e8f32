"""Heatmap codecs and the top-down affine: round trips, sub-pixel refinement, conventions."""

import numpy as np
import pytest
from PIL import Image

from tessera.datamodules.pose.codecs import MSRAHeatmap, UDPHeatmap, build_codec, refine_dark
from tessera.datamodules.pose.topdown import (
    apply_affine,
    bbox_center_scale,
    fix_aspect_ratio,
    warp_image,
    warp_matrix,
)

RNG = np.random.default_rng(0)
INPUT, HEATMAP = (192, 256), (48, 64)


def _points(n=40):
    return np.stack([RNG.uniform(20, 170, n), RNG.uniform(20, 235, n)], 1)


def test_msra_rounds_then_quarter_offset():
    codec = MSRAHeatmap(INPUT, HEATMAP, sigma=2)
    pts = _points()
    hm, w = codec.encode(pts, np.ones(len(pts)))
    assert hm.shape == (len(pts), 64, 48) and w.min() == 1
    assert np.allclose(hm.max(axis=(1, 2)), 1.0)  # peak at the rounded position
    dec, scores = codec.decode(hm)
    # Encoding rounds to the heatmap grid: error at most half a heatmap pixel (2 input px).
    assert np.abs(dec - np.floor(pts / 4 + 0.5) * 4).max() <= 1.0 + 1e-9
    assert np.abs(dec - pts).max() <= 3.0 and np.allclose(scores, 1.0)


def test_dark_and_udp_are_sub_pixel():
    pts = _points()
    for codec, tol in (
        (MSRAHeatmap(INPUT, HEATMAP, 2, unbiased=True), 0.2),
        (UDPHeatmap(INPUT, HEATMAP, 2), 0.2),
    ):
        hm, _ = codec.encode(pts, np.ones(len(pts)))
        dec, _ = codec.decode(hm)
        assert np.abs(dec - pts).max() < tol * codec.stride.max()


def test_quarter_offset_improves_on_argmax():
    codec = MSRAHeatmap(INPUT, HEATMAP, 2, unbiased=True)  # exact Gaussian, decode plain
    pts = _points(200)
    hm, _ = codec.encode(pts, np.ones(len(pts)))
    plain = MSRAHeatmap(INPUT, HEATMAP, 2)
    from tessera.datamodules.pose.codecs import heatmap_maximum

    argmax = heatmap_maximum(hm)[0] * 4
    quarter = plain.decode(hm)[0]
    assert np.abs(quarter - pts).mean() < np.abs(argmax - pts).mean()


def test_udp_stride_and_dark_blur():
    codec = build_codec("udp", INPUT, HEATMAP)
    assert np.allclose(codec.stride, [191 / 47, 255 / 63])
    hm = np.zeros((1, 64, 48))
    hm[0, 10, 10] = 1.0  # a delta: DARK must not move it (symmetric neighbourhood)
    assert np.allclose(refine_dark(np.array([[10.0, 10.0]]), hm, 11), [[10, 10]])


def test_keypoints_outside_heatmap_get_zero_weight():
    codec = MSRAHeatmap(INPUT, HEATMAP, 2)
    hm, w = codec.encode(np.array([[-100.0, 10], [50, 900], [50, 50]]), np.array([1, 1, 0]))
    assert w.tolist() == [0, 0, 0] and hm.max() == 0


def test_box_to_center_scale_and_aspect():
    c, s = bbox_center_scale([10, 20, 30, 80])
    assert np.allclose(c, [25, 60]) and np.allclose(s, [37.5, 100])
    assert np.allclose(fix_aspect_ratio(s, 0.75), [75, 100])
    assert np.allclose(fix_aspect_ratio([100, 10], 0.75), [100, 100 / 0.75])


@pytest.mark.parametrize("udp", [False, True])
def test_warp_matrix_maps_box_to_crop(udp):
    c, s = np.array([100.0, 80.0]), np.array([60.0, 80.0])
    m = warp_matrix(c, s, 0, (48, 64), use_udp=udp)
    centre = [23.5, 31.5] if udp else [24, 32]
    assert np.allclose(apply_affine(c, m), centre)
    edge = [47, 31.5] if udp else [48, 32]
    assert np.allclose(apply_affine(c + [30, 0], m), edge)
    rot = warp_matrix(c, s, 90, (48, 64), use_udp=udp)
    # 90° counter-clockwise: a point to the right of the centre goes up in the crop
    assert apply_affine(c + [10, 0], rot)[1] < centre[1] - 5


def test_warp_image_samples_at_inverse_affine():
    arr = np.zeros((50, 60, 3), np.uint8)
    arr[20, 30] = 255
    m = warp_matrix(np.array([30.0, 20.0]), np.array([30.0, 40.0]), 0, (30, 40))
    crop = warp_image(Image.fromarray(arr), m, (30, 40))
    y, x = np.unravel_index(crop[..., 0].argmax(), crop.shape[:2])
    assert (x, y) == tuple(np.round(apply_affine(np.array([30.0, 20.0]), m)).astype(int))
