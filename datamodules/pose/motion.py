"""Plausible 3-D human motion for the synthetic world: H36M-17 skeletons with per-person
bone lengths, joint-angle limits and periodic actions (walking, waving, squatting, boxing,
turning), plus COCO-17 face points from the head pose.

World frame: metres, z up; the person stands on z = 0.
"""

from __future__ import annotations

import numpy as np

ACTIONS = ("Walking", "Waving", "Squat", "Boxing", "Turning")


def _rot_z(yaw: np.ndarray) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    z, o = np.zeros_like(yaw), np.ones_like(yaw)
    return np.stack(
        [np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2
    )


def _limb(start, direction, length):
    return start + direction * length[..., None]


def _dir(pitch, yaw_local):
    """Unit vector hanging down (-z) rotated by ``pitch`` forward (+x) and ``yaw_local``
    sideways (+y)."""
    return np.stack(
        [np.sin(pitch) * np.cos(yaw_local), np.sin(yaw_local), -np.cos(pitch) * np.cos(yaw_local)],
        -1,
    )


def sample_motion(
    rng: np.random.Generator, frames: int, action: str | None = None, fps: float = 25.0
) -> tuple[np.ndarray, np.ndarray]:
    """``(T, 17, 3)`` H36M joints and ``(T, 5, 3)`` COCO face points (nose, eyes, ears).

    Angles stay inside human limits (knees bend one way, elbows < 150°), bone lengths are a
    random body scale (0.85–1.15) times average proportions with ±5 % per bone.
    """
    action = action or ACTIONS[rng.integers(len(ACTIONS))]
    t = np.arange(frames) / fps
    scale = rng.uniform(0.85, 1.15)
    bone = lambda base: np.full(frames, base * scale * rng.uniform(0.95, 1.05))  # noqa: E731
    thigh, shin, upper, fore = bone(0.45), bone(0.44), bone(0.29), bone(0.26)
    hip_w, sh_w, spine, neck, head = bone(0.13), bone(0.18), bone(0.25), bone(0.24), bone(0.12)
    freq = rng.uniform(0.6, 1.2)
    phase = rng.uniform(0, 2 * np.pi)
    w = 2 * np.pi * freq * t + phase
    amp = rng.uniform(0.5, 1.0)
    z = np.zeros(frames)
    hip_swing_l, hip_swing_r = z.copy(), z.copy()
    knee_l, knee_r = np.full(frames, 0.05), np.full(frames, 0.05)
    sh_l, sh_r = np.full(frames, 0.1), np.full(frames, 0.1)
    sh_side_l, sh_side_r = np.full(frames, 0.15), np.full(frames, 0.15)
    elbow_l, elbow_r = np.full(frames, 0.2), np.full(frames, 0.2)
    lean, crouch = np.full(frames, rng.uniform(-0.05, 0.15)), z.copy()
    yaw = rng.uniform(0, 2 * np.pi) + z
    root_xy = np.zeros((frames, 2))
    if action == "Walking":
        hip_swing_l, hip_swing_r = 0.45 * amp * np.sin(w), -0.45 * amp * np.sin(w)
        knee_l = 0.05 + 0.6 * amp * np.clip(np.sin(w + 1.2), 0, None)
        knee_r = 0.05 + 0.6 * amp * np.clip(np.sin(w + 1.2 + np.pi), 0, None)
        sh_l, sh_r = -0.4 * amp * np.sin(w), 0.4 * amp * np.sin(w)
        speed = 1.2 * amp
        heading = yaw + 0.1 * np.sin(0.3 * t)
        step = speed / fps * np.stack([np.cos(heading), np.sin(heading)], -1)
        root_xy = np.cumsum(step, 0) - step.sum(0) / 2
        yaw = heading
    elif action == "Waving":
        sh_r = np.full(frames, 2.6)
        sh_side_r = 0.5 + 0.4 * np.sin(2 * w)
        elbow_r = 0.6 + 0.5 * np.sin(2 * w)
    elif action == "Squat":
        depth = 0.5 * (1 - np.cos(w)) * amp
        hip_swing_l = hip_swing_r = 1.2 * depth
        knee_l = knee_r = 0.05 + 2.0 * depth
        crouch = depth
        sh_l = sh_r = 1.4 * depth
        lean = lean + 0.5 * depth
    elif action == "Boxing":
        punch_l = np.clip(np.sin(2 * w), 0, None)
        punch_r = np.clip(np.sin(2 * w + np.pi), 0, None)
        sh_l, sh_r = 1.2 + 0.3 * punch_l, 1.2 + 0.3 * punch_r
        elbow_l, elbow_r = 2.2 - 2.0 * punch_l, 2.2 - 2.0 * punch_r
        knee_l = knee_r = np.full(frames, 0.3)
        hip_swing_l, hip_swing_r = np.full(frames, 0.2), np.full(frames, -0.1)
    else:  # Turning
        yaw = yaw + 0.8 * w
        sh_side_l = sh_side_r = 0.3 + 0.5 * amp * (1 + np.sin(w)) / 2
    elbow_l, elbow_r = np.clip(elbow_l, 0, 2.6), np.clip(elbow_r, 0, 2.6)
    # Body frame: x forward, y left, z up.
    pelvis_h = thigh * np.cos(0.5 * (hip_swing_l + hip_swing_r)) + shin - crouch * 0.5
    pelvis = np.stack([z, z, pelvis_h], -1)
    r_hip = pelvis + np.stack([z, -hip_w, z], -1)
    l_hip = pelvis + np.stack([z, hip_w, z], -1)
    r_knee = _limb(r_hip, _dir(hip_swing_r, z - 0.03), thigh)
    l_knee = _limb(l_hip, _dir(hip_swing_l, z + 0.03), thigh)
    r_foot = _limb(r_knee, _dir(hip_swing_r - knee_r, z), shin)
    l_foot = _limb(l_knee, _dir(hip_swing_l - knee_l, z), shin)
    up = np.stack([np.sin(lean), z, np.cos(lean)], -1)
    spine_j = pelvis + up * spine[..., None]
    thorax = spine_j + up * neck[..., None]
    neck_j = thorax + up * (head[..., None] * 0.8) + np.stack([head * 0.3, z, z], -1)
    head_j = thorax + up * (head[..., None] * 1.9)
    l_sh = thorax + np.stack([z, sh_w, z - 0.02], -1)
    r_sh = thorax + np.stack([z, -sh_w, z - 0.02], -1)
    l_el = _limb(l_sh, _dir(sh_l, sh_side_l), upper)
    r_el = _limb(r_sh, _dir(sh_r, -sh_side_r), upper)
    l_wr = _limb(l_el, _dir(sh_l + elbow_l, sh_side_l), fore)
    r_wr = _limb(r_el, _dir(sh_r + elbow_r, -sh_side_r), fore)
    joints = np.stack(
        [
            pelvis,
            r_hip,
            r_knee,
            r_foot,
            l_hip,
            l_knee,
            l_foot,
            spine_j,
            thorax,
            neck_j,
            head_j,
            l_sh,
            l_el,
            l_wr,
            r_sh,
            r_el,
            r_wr,
        ],
        1,
    )
    hc = (neck_j + head_j) / 2
    fwd = np.array([1.0, 0, 0])
    left = np.array([0, 1.0, 0])
    r = head * 0.9
    face = np.stack(
        [
            hc + fwd * r[:, None],
            hc + (0.8 * fwd + 0.35 * left) * r[:, None] + np.array([0, 0, 0.25]) * r[:, None],
            hc + (0.8 * fwd - 0.35 * left) * r[:, None] + np.array([0, 0, 0.25]) * r[:, None],
            hc + left * r[:, None],
            hc - left * r[:, None],
        ],
        1,
    )
    ground = np.minimum(joints[:, 3, 2], joints[:, 6, 2])[:, None]  # feet on the floor
    joints[..., 2] -= ground
    face[..., 2] -= ground
    rot = _rot_z(yaw)  # (T, 3, 3)
    world = np.einsum("tij,tkj->tki", rot, joints)
    face = np.einsum("tij,tkj->tki", rot, face)
    offset = np.concatenate([root_xy, np.zeros((frames, 1))], -1)[:, None]
    return world + offset, face + offset


def to_coco(joints: np.ndarray, face: np.ndarray) -> np.ndarray:
    """H36M-17 joints + face points → COCO-17 ``(..., 17, 3)``."""
    j = joints
    order = [
        face[..., 0, :],
        face[..., 1, :],
        face[..., 2, :],
        face[..., 3, :],
        face[..., 4, :],
        j[..., 11, :],
        j[..., 14, :],
        j[..., 12, :],
        j[..., 15, :],
        j[..., 13, :],
        j[..., 16, :],
        j[..., 4, :],
        j[..., 1, :],
        j[..., 5, :],
        j[..., 2, :],
        j[..., 6, :],
        j[..., 3, :],
    ]
    return np.stack(order, -2)
