"""Exact rotated BEV / 3-D IoU against shapely and hand-computed pairs."""

import numpy as np
import pytest
from shapely.geometry import Polygon

from tessera.apps.detection3d.iou import bev_corners, bev_iou, iou3d


def test_bev_iou_matches_shapely_on_random_rotated_pairs():
    rng = np.random.default_rng(0)
    a = np.c_[rng.uniform(-2, 2, (60, 2)), rng.uniform(0.3, 4, (60, 2)), rng.uniform(-4, 4, 60)]
    b = np.c_[rng.uniform(-2, 2, (50, 2)), rng.uniform(0.3, 4, (50, 2)), rng.uniform(-4, 4, 50)]
    pa, pb = [Polygon(c) for c in bev_corners(a)], [Polygon(c) for c in bev_corners(b)]
    ref = np.array([[p.intersection(q).area / p.union(q).area for q in pb] for p in pa])
    np.testing.assert_allclose(bev_iou(a, b), ref, atol=1e-12)
    assert 0 < (ref > 0).mean() < 1  # partial overlaps and disjoint pairs both present


@pytest.mark.parametrize(
    ("box_b", "expected"),
    [
        ([0.0, 0.0, 1.0, 1.0, 0.0], 1.0),  # identical (the numba.cuda IoU gets 0 or 1/3 here)
        ([0.0, 0.0, 1.0, 1.0, np.pi / 2], 1.0),  # a square turned by 90 degrees is itself
        ([0.5, 0.0, 1.0, 1.0, 0.0], 1 / 3),  # half overlap: 0.5 / 1.5
        ([5.0, 0.0, 1.0, 1.0, 0.3], 0.0),  # disjoint
        ([1.0, 0.0, 1.0, 1.0, 0.0], 0.0),  # touching edges only
        # turned 45 degrees about the same centre: octagon of area 2(sqrt2 - 1)
        ([0.0, 0.0, 1.0, 1.0, np.pi / 4], (2 * (2**0.5 - 1)) / (2 - 2 * (2**0.5 - 1))),
    ],
)
def test_bev_iou_hand_made(box_b, expected):
    assert bev_iou(np.array([[0.0, 0.0, 1.0, 1.0, 0.0]]), np.array([box_b]))[0, 0] == pytest.approx(
        expected, abs=1e-12
    )


def test_iou3d_hand_made():
    a = np.array([[0.0, 0.0, 0.0, 4.0, 2.0, 2.0, 0.3]])
    b = a.copy()
    b[0, 2] = 1.0  # same footprint, half the height overlaps: 4*2*1 / (16 + 16 - 8)
    assert iou3d(a, b)[0, 0] == pytest.approx(1 / 3)
    b[0, 2] = 2.0  # stacked, touching
    assert iou3d(a, b)[0, 0] == 0.0
    assert iou3d(a, a)[0, 0] == pytest.approx(1.0)
    assert iou3d(a, np.zeros((0, 7))).shape == (1, 0)
