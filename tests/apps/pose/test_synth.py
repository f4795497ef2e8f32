"""The synthetic world draws heads as people have them: a face (skin, eyes, nose) on the side
turned to the camera, hair over the back of the head, ears at the sides; the face points'
visibility flags agree with what is drawn."""

import numpy as np
import pytest
from PIL import Image

from tessera.datamodules.pose.h36m import Camera, project, world_to_camera
from tessera.datamodules.pose.motion import sample_motion, to_coco
from tessera.datamodules.pose.synth import look_at_quaternion, render_person

SIZE = (128, 128)
COLOURS = {
    "skin": (230, 180, 150),
    "hair": (40, 25, 10),
    "eyes": (0, 0, 200),
    "shirt": (200, 0, 0),
    "pants": (0, 150, 0),
}
BACKGROUND = (255, 255, 255)


def _view(azimuth_deg: float, seed: int = 0):
    """One standing figure seen from ``azimuth_deg`` around it (0 = from the front: the
    camera on the side the nose points to) at head height, 2.5 m away."""
    joints, face = sample_motion(np.random.default_rng(seed), 1, "Waving")
    coco = to_coco(joints[0], face[0])
    head = coco[:5].mean(0)
    forward = coco[0] - (coco[3] + coco[4]) / 2
    forward[2] = 0
    forward /= np.linalg.norm(forward)
    a = np.deg2rad(azimuth_deg)
    side = np.cross([0.0, 0.0, 1.0], forward)
    position = head + 2.5 * (np.cos(a) * forward + np.sin(a) * side)
    cam = Camera(
        "cam", *SIZE, np.array([64.0, 64.0]), np.array([220.0, 220.0]), np.zeros(3),
        np.zeros(2), look_at_quaternion(position, coco[11:13].mean(0)), position,
    )  # fmt: skip
    cam3d = world_to_camera(coco, cam)
    kp2d = project(cam3d, cam)
    img = Image.new("RGB", SIZE, BACKGROUND)
    covered = render_person(img, Image.new("L", SIZE, 0), kp2d, cam3d[:, 2], 220.0, COLOURS)
    return np.asarray(img).astype(int), kp2d, covered


def _colour_at(img, xy):
    x, y = np.round(xy).astype(int)
    return tuple(img[y, x])


def _count(img, colour):
    return int((np.abs(img - np.array(colour)).sum(-1) < 10).sum())


def test_facing_the_camera_shows_eyes_nose_and_face():
    img, kp, covered = _view(0)
    assert not covered[:3].any()  # nose and both eyes visible
    for k in (1, 2):
        assert _colour_at(img, kp[k]) == COLOURS["eyes"], k
    assert _colour_at(img, kp[:5].mean(0)) != COLOURS["hair"]  # the face, not the skull
    assert _count(img, COLOURS["skin"]) > _count(img, COLOURS["hair"])


def test_facing_away_shows_hair_and_hides_the_face():
    img, kp, covered = _view(180)
    assert covered[:3].all()  # nose and eyes on the far side
    assert _count(img, COLOURS["eyes"]) == 0
    assert _colour_at(img, kp[:5].mean(0)) == COLOURS["hair"]


@pytest.mark.parametrize("azimuth", [90, -90])
def test_side_view_shows_the_near_ear_only(azimuth):
    img, kp, covered = _view(azimuth)
    # azimuth +90: the camera on the person's left (COCO 3 = left ear), -90: on the right
    near, far = (3, 4) if azimuth > 0 else (4, 3)
    assert not covered[near] and covered[far]
    r, g, b = _colour_at(img, kp[near])
    assert (r, g, b) not in (COLOURS["hair"], BACKGROUND)  # the ear is drawn where it is
