"""Exact rotated IoU of 3-D boxes on CPU (BEV polygon intersection x height overlap).

The intersection of two convex quadrilaterals is the convex hull of the corners of each that
lie inside the other plus the crossings of their edges. All pairs are handled at once in
NumPy (float64): candidates ``(P, 24, 2)`` are sorted by angle around their centroid and the
area is the shoelace sum, with missing candidates replaced by the first vertex (zero-area
terms). Corners on the other box's boundary count as inside, so a box coincident with another
gives IoU 1 (the numba.cuda ``rotate_iou`` of the KITTI Python evaluator returns 0 or 1/3
there, OpenPCDet issues 972/1060).

Boxes: BEV ``(x, y, dx, dy, heading)``; 3-D LiDAR ``(x, y, z_centre, dx, dy, dz, heading)``.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-9


def bev_corners(boxes: np.ndarray) -> np.ndarray:
    """BEV boxes (N, 5) -> counter-clockwise corners (N, 4, 2)."""
    boxes = np.asarray(boxes, dtype=np.float64)
    signs = np.array([[0.5, 0.5], [-0.5, 0.5], [-0.5, -0.5], [0.5, -0.5]])
    local = signs[None] * boxes[:, None, 2:4]  # (N, 4, 2)
    c, s = np.cos(boxes[:, 4])[:, None], np.sin(boxes[:, 4])[:, None]
    x = local[..., 0] * c - local[..., 1] * s
    y = local[..., 0] * s + local[..., 1] * c
    return np.stack([x, y], -1) + boxes[:, None, :2]


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def _inside(points: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """points (P, K, 2) inside-or-on convex CCW poly (P, 4, 2) -> (P, K) bool."""
    edges = np.roll(poly, -1, axis=1) - poly  # (P, 4, 2)
    rel = points[:, :, None, :] - poly[:, None, :, :]  # (P, K, 4, 2)
    scale = np.linalg.norm(edges, axis=-1)[:, None, :] + EPS
    return (_cross(edges[:, None], rel) / scale >= -1e-9).all(-1)


def intersection_area(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Area of the intersection of convex CCW quadrilaterals a, b (P, 4, 2) -> (P,)."""
    p = len(a)
    if p == 0:
        return np.zeros(0)
    r = np.roll(a, -1, axis=1) - a  # (P, 4, 2) edges of a
    s = np.roll(b, -1, axis=1) - b
    denom = _cross(r[:, :, None], s[:, None, :])  # (P, 4, 4)
    qp = b[:, None, :, :] - a[:, :, None, :]  # (P, 4, 4, 2)
    safe = np.where(np.abs(denom) < 1e-12, 1.0, denom)
    t = _cross(qp, s[:, None, :, :]) / safe
    u = _cross(qp, r[:, :, None, :]) / safe
    tol = 1e-9
    crossing = (
        (np.abs(denom) >= 1e-12) & (t >= -tol) & (t <= 1 + tol) & (u >= -tol) & (u <= 1 + tol)
    )
    cross_pts = a[:, :, None, :] + t[..., None] * r[:, :, None, :]  # (P, 4, 4, 2)
    pts = np.concatenate([a, b, cross_pts.reshape(p, 16, 2)], 1)  # (P, 24, 2)
    valid = np.concatenate([_inside(a, b), _inside(b, a), crossing.reshape(p, 16)], 1)
    count = valid.sum(1)
    centre = (pts * valid[..., None]).sum(1) / np.maximum(count, 1)[:, None]
    rel = pts - centre[:, None]
    angle = np.where(valid, np.arctan2(rel[..., 1], rel[..., 0]), np.inf)
    order = np.argsort(angle, axis=1, kind="stable")
    rel = np.take_along_axis(rel, order[..., None], 1)
    valid = np.take_along_axis(valid, order, 1)
    rel = np.where(valid[..., None], rel, rel[:, :1])  # missing -> first vertex: zero terms
    area = 0.5 * _cross(rel, np.roll(rel, -1, axis=1)).sum(1)
    return np.where(count >= 3, np.abs(area), 0.0)


def _pairs(n: int, m: int, centres_a, centres_b, radius_a, radius_b):
    """Index pairs whose circumscribed circles overlap (others have zero intersection)."""
    dist = np.linalg.norm(centres_a[:, None] - centres_b[None], axis=-1)
    return np.nonzero(dist <= radius_a[:, None] + radius_b[None] + 1e-6)


def bev_intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise BEV intersection areas of boxes a (N, 5), b (M, 5) -> (N, M)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 5)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 5)
    out = np.zeros((len(a), len(b)))
    if len(a) == 0 or len(b) == 0:
        return out
    ra = 0.5 * np.hypot(a[:, 2], a[:, 3])
    rb = 0.5 * np.hypot(b[:, 2], b[:, 3])
    i, j = _pairs(len(a), len(b), a[:, :2], b[:, :2], ra, rb)
    if len(i):
        out[i, j] = intersection_area(bev_corners(a)[i], bev_corners(b)[j])
    return out


def bev_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise rotated BEV IoU of a (N, 5), b (M, 5) -> (N, M)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 5)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 5)
    inter = bev_intersection(a, b)
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return np.where(union > 0, inter / np.maximum(union, EPS), 0.0)


def iou3d(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise rotated 3-D IoU of LiDAR boxes a (N, 7), b (M, 7) -> (N, M)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 7)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 7)
    inter = bev_intersection(a[:, [0, 1, 3, 4, 6]], b[:, [0, 1, 3, 4, 6]])
    top = np.minimum((a[:, 2] + a[:, 5] / 2)[:, None], (b[:, 2] + b[:, 5] / 2)[None])
    bottom = np.maximum((a[:, 2] - a[:, 5] / 2)[:, None], (b[:, 2] - b[:, 5] / 2)[None])
    inter = inter * np.clip(top - bottom, 0, None)
    vol_a, vol_b = a[:, 3] * a[:, 4] * a[:, 5], b[:, 3] * b[:, 4] * b[:, 5]
    union = vol_a[:, None] + vol_b[None] - inter
    return np.where(union > 0, inter / np.maximum(union, EPS), 0.0)
