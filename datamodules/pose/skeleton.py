"""Keypoint layouts: COCO-17 (names, 1-based skeleton, flip pairs, OKS sigmas) and the
17-joint Human3.6M layout VideoPose3D keeps from the 32 mocap joints.

COCO values follow the COCO keypoint annotation format (cocodataset.org/#format-data) and the
per-keypoint OKS sigmas of the COCO evaluation (``pycocotools.cocoeval.Params``).
"""

from __future__ import annotations

import numpy as np

COCO_KEYPOINTS = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
# 1-based joint pairs, as in ``categories[0]["skeleton"]`` of person_keypoints_*.json.
COCO_SKELETON = (
    (16, 14),
    (14, 12),
    (17, 15),
    (15, 13),
    (12, 13),
    (6, 12),
    (7, 13),
    (6, 7),
    (6, 8),
    (7, 9),
    (8, 10),
    (9, 11),
    (2, 3),
    (1, 2),
    (1, 3),
    (2, 4),
    (3, 5),
    (4, 6),
    (5, 7),
)
COCO_FLIP_PAIRS = ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16))
COCO_SIGMAS = np.array(
    [
        0.026,
        0.025,
        0.025,
        0.035,
        0.035,
        0.079,
        0.079,
        0.072,
        0.072,
        0.062,
        0.062,
        0.107,
        0.107,
        0.087,
        0.087,
        0.089,
        0.089,
    ]
)
COCO_UPPER_BODY = tuple(range(11))  # half-body augmentation: head, arms
COCO_LOWER_BODY = tuple(range(11, 17))

# Human3.6M, 17 joints as VideoPose3D keeps them (root = pelvis).
H36M_JOINTS = (
    "pelvis",
    "right_hip",
    "right_knee",
    "right_foot",
    "left_hip",
    "left_knee",
    "left_foot",
    "spine",
    "thorax",
    "neck_nose",
    "head",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
)
H36M_PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
H36M_LEFT = (4, 5, 6, 11, 12, 13)
H36M_RIGHT = (1, 2, 3, 14, 15, 16)
# Indices of the 17 joints kept among the 32 of the Human3.6M mocap skeleton
# (VideoPose3D removes 4, 5, 9, 10, 11, 16, 20, 21, 22, 23, 24, 28, 29, 30, 31).
H36M_32_TO_17 = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)


def flip_permutation(num_joints: int, pairs) -> np.ndarray:
    """Index array mapping each joint to its mirror joint (identity for centre joints)."""
    perm = np.arange(num_joints)
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return perm


def skeleton_edges(parents) -> list[tuple[int, int]]:
    """Undirected bone list from a parent array (root has parent -1)."""
    return [(p, j) for j, p in enumerate(parents) if p >= 0]


def hop_distances(num_joints: int, edges) -> np.ndarray:
    """``(J, J)`` graph distance (number of bones) between joints; unreachable = J."""
    dist = np.full((num_joints, num_joints), num_joints, dtype=np.int64)
    np.fill_diagonal(dist, 0)
    for a, b in edges:
        dist[a, b] = dist[b, a] = 1
    for k in range(num_joints):  # Floyd–Warshall on a tiny graph
        dist = np.minimum(dist, dist[:, k : k + 1] + dist[k : k + 1, :])
    return dist


def coco_to_h36m(keypoints: np.ndarray) -> np.ndarray:
    """COCO-17 ``(..., 17, D)`` to the H36M-17 order used for lifting.

    COCO has no pelvis, spine, thorax or head top: pelvis = mid-hips, thorax = mid-shoulders,
    spine = mid(pelvis, thorax), neck/nose = nose, head = mid-eyes moved away from the thorax
    by half the thorax-nose distance. This is an approximation (the common one in
    VideoPose3D issues #245/#114); a lifter trained on H36M 2-D detections sees a small shift.
    """
    k = np.asarray(keypoints, dtype=np.float64)
    pelvis = (k[..., 11, :] + k[..., 12, :]) / 2
    thorax = (k[..., 5, :] + k[..., 6, :]) / 2
    spine = (pelvis + thorax) / 2
    nose = k[..., 0, :]
    eyes = (k[..., 1, :] + k[..., 2, :]) / 2
    head = eyes + 0.5 * (nose - thorax)
    order = [
        pelvis,
        k[..., 12, :],
        k[..., 14, :],
        k[..., 16, :],
        k[..., 11, :],
        k[..., 13, :],
        k[..., 15, :],
        spine,
        thorax,
        nose,
        head,
        k[..., 5, :],
        k[..., 7, :],
        k[..., 9, :],
        k[..., 6, :],
        k[..., 8, :],
        k[..., 10, :],
    ]
    return np.stack(order, axis=-2)
