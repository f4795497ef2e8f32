"""Top-down training augmentation, checked geometrically against mmpose's definitions
(``open-mmlab/mmpose``, ``mmpose/datasets/transforms/common_transforms.py``: ``RandomFlip``,
``RandomHalfBody``, ``RandomBBoxTransform``; ``TopdownAffine`` fixes the aspect ratio last).

The test image carries a 5×5 square of a distinct colour at every keypoint, so a crop shows
joint ``j``'s colour exactly where the affine puts joint ``j``: image and targets move as one.
"""

from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from scipy import stats

from tessera.datamodules.pose.coco import PersonInstance
from tessera.datamodules.pose.codecs import MSRAHeatmap, UDPHeatmap, heatmap_maximum
from tessera.datamodules.pose.datasets import IMAGENET_MEAN, IMAGENET_STD, TopDownDataset
from tessera.datamodules.pose.skeleton import COCO_FLIP_PAIRS
from tessera.datamodules.pose.topdown import (
    Augmentation,
    apply_affine,
    fix_aspect_ratio,
    random_box_transform,
    truncated_normal,
    warp_matrix,
)

IMAGE_W, IMAGE_H = 150, 180
INPUT, HEATMAP = (96, 128), (24, 32)
# A standing figure, hands in front of the chest, off the image's vertical centre line and
# not left/right symmetric (so a missing swap or a wrong mirror axis shows).
FIGURE = np.array(
    [
        [0, 0],  # nose
        [6, -5],  # left eye (the person's left: image right, facing the camera)
        [-6, -5],
        [12, -2],  # left ear
        [-13, -1],
        [15, 18],  # left shoulder
        [-14, 19],
        [21, 36],  # left elbow
        [-20, 35],
        [10, 44],  # left wrist
        [-11, 43],
        [9, 70],  # left hip
        [-10, 70],
        [11, 100],  # left knee
        [-9, 101],
        [12, 130],  # left ankle
        [-10, 131],
    ]
)
KEYPOINTS = np.concatenate([FIGURE + [88, 25], np.full((17, 1), 2.0)], axis=1)
COLOURS = np.array([(40 + 12 * j, 230 - 11 * j, (70 * j) % 200 + 30) for j in range(17)])
BACKGROUND = (0, 0, 0)
OFF = Augmentation(
    flip_prob=0.0, half_body_prob=0.0, shift_prob=0.0, scale_prob=0.0, rotate_prob=0.0
)
PERM = np.arange(17)
for _a, _b in COCO_FLIP_PAIRS:
    PERM[_a], PERM[_b] = _b, _a


@pytest.fixture(scope="module")
def image_path(tmp_path_factory):
    img = Image.new("RGB", (IMAGE_W, IMAGE_H), BACKGROUND)
    draw = ImageDraw.Draw(img)
    for (x, y, _), colour in zip(KEYPOINTS, COLOURS, strict=True):
        draw.rectangle([x - 2, y - 2, x + 2, y + 2], fill=tuple(int(c) for c in colour))
    path = tmp_path_factory.mktemp("topdown") / "person.png"
    img.save(path)
    return path


def _instance(path, keypoints=KEYPOINTS):
    lo, hi = KEYPOINTS[:, :2].min(0) - 6, KEYPOINTS[:, :2].max(0) + 6
    return PersonInstance(
        "1_1", 1, path, np.array([*lo, *(hi - lo)]), 1.0, keypoints.copy(), (IMAGE_W, IMAGE_H)
    )


def _item(path, aug, keypoints=KEYPOINTS, udp=False, seed=0):
    codec = (UDPHeatmap if udp else MSRAHeatmap)(INPUT, HEATMAP, sigma=2)
    data = TopDownDataset([_instance(path, keypoints)], INPUT, codec, udp, 1.25, aug, seed=seed)
    return data[0]


def _in_crop(item, udp=False):
    """Image-space ground truth of the item through its own affine → crop pixels ``(17, 2)``."""
    m = warp_matrix(
        item["center"].numpy(), item["scale"].numpy(), float(item["rotation"]), INPUT, udp
    )
    return apply_affine(item["gt_keypoints"][:, :2].numpy(), m)


def _pixels(item) -> np.ndarray:
    """The crop back in 0–255 RGB, ``(H, W, 3)``."""
    x = item["image"].numpy().transpose(1, 2, 0)
    return (x * IMAGENET_STD + IMAGENET_MEAN) * 255


def _assert_colours_at_joints(item, udp=False):
    """Every labelled joint inside the crop sits on its own colour square."""
    pts = _in_crop(item, udp)
    source = PERM if bool(item["flipped"]) else np.arange(17)  # flipped joint j came from PERM[j]
    pixels = _pixels(item)
    seen = 0
    for j, (x, y) in enumerate(pts):
        if item["gt_keypoints"][j, 2] <= 0 or not (
            0 <= x <= INPUT[0] - 1 and 0 <= y <= INPUT[1] - 1
        ):
            continue
        got = pixels[int(round(y)), int(round(x))]
        assert np.abs(got - COLOURS[source[j]]).max() <= 3, (j, got, COLOURS[source[j]])
        seen += 1
    return seen


# --- flip ------------------------------------------------------------------------------------


def test_flip_mirrors_about_the_image_and_swaps_left_and_right(image_path):
    keypoints = KEYPOINTS.copy()
    keypoints[9, 2] = 0  # left wrist unlabelled, right ear occluded
    keypoints[9, :2] = 0
    keypoints[4, 2] = 1
    plain = _item(image_path, OFF, keypoints)
    flipped = _item(image_path, replace(OFF, flip_prob=1.0), keypoints)
    assert not bool(plain["flipped"]) and bool(flipped["flipped"])
    gt, ref = flipped["gt_keypoints"].numpy(), plain["gt_keypoints"].numpy()
    for a, b in [(0, 0), *COCO_FLIP_PAIRS, *[(q, p) for p, q in COCO_FLIP_PAIRS]]:
        assert gt[a, 2] == ref[b, 2]  # visibility travels with the swapped joint
        if ref[b, 2] > 0:
            assert gt[a, 0] == IMAGE_W - 1 - ref[b, 0] and gt[a, 1] == ref[b, 1]
    assert gt[10, 2] == 0 and gt[3, 2] == 1  # right wrist now unlabelled, left ear occluded
    assert flipped["center"][0] == IMAGE_W - 1 - plain["center"][0]
    assert flipped["center"][1] == plain["center"][1]
    torch.testing.assert_close(flipped["scale"], plain["scale"])


@pytest.mark.parametrize("udp", [False, True])
def test_flipped_crop_is_the_mirrored_pair_swapped_crop(image_path, udp):
    plain = _item(image_path, OFF, udp=udp)
    flipped = _item(image_path, replace(OFF, flip_prob=1.0), udp=udp)
    # Crop pixels: the mirror axis is the crop centre, W/2 (standard) or (W-1)/2 (UDP).
    axis = (INPUT[0] - 1) if udp else INPUT[0]
    a, b = _in_crop(flipped, udp), _in_crop(plain, udp)[PERM]
    np.testing.assert_allclose(a[:, 0], axis - b[:, 0], atol=1e-9)
    np.testing.assert_allclose(a[:, 1], b[:, 1], atol=1e-9)
    # The image follows: UDP mirrors pixel columns exactly; the standard affine reads the
    # mirror image one column over (its known half-pixel bias, Huang et al., CVPR 2020).
    img_a, img_b = _pixels(flipped), _pixels(plain)[:, ::-1]
    if udp:
        np.testing.assert_allclose(img_a, img_b, atol=1.5)
    else:
        np.testing.assert_allclose(img_a[:, 1:], img_b[:, :-1], atol=1.5)
    assert _assert_colours_at_joints(flipped, udp) == 17
    if udp:  # targets: the pair's heatmap, mirrored
        hm_a, hm_b = flipped["heatmaps"].numpy(), plain["heatmaps"].numpy()[PERM, :, ::-1]
        np.testing.assert_allclose(hm_a, hm_b, atol=1e-5)
        assert torch.equal(flipped["keypoint_weights"], plain["keypoint_weights"][PERM])


# --- half body -------------------------------------------------------------------------------

UPPER, LOWER = list(range(11)), list(range(11, 17))


def _half(upper_prob, labelled):
    keypoints = KEYPOINTS.copy()
    keypoints[[j for j in range(17) if j not in labelled], 2] = 0
    return keypoints, replace(OFF, half_body_prob=1.0, upper_prob=upper_prob)


@pytest.mark.parametrize("upper_prob, part", [(1.0, UPPER), (0.0, LOWER)])
def test_half_body_box_holds_only_that_half_with_padding_1_5(image_path, upper_prob, part):
    keypoints, aug = _half(upper_prob, range(17))
    item = _item(image_path, aug, keypoints)
    chosen = KEYPOINTS[part, :2]
    np.testing.assert_allclose(item["center"].numpy(), chosen.mean(0))
    extent = chosen.max(0) - chosen.min(0)
    np.testing.assert_allclose(
        item["scale"].numpy(), fix_aspect_ratio(extent * 1.5, INPUT[0] / INPUT[1])
    )
    pts = _in_crop(item)
    inside = (pts >= 0).all(1) & (pts[:, 0] <= INPUT[0] - 1) & (pts[:, 1] <= INPUT[1] - 1)
    assert inside[part].all() and not np.delete(inside, part).any()
    weights = item["keypoint_weights"].numpy()
    assert (weights[part] == 1).all() and (np.delete(weights, part) == 0).all()
    assert _assert_colours_at_joints(item) == len(part)


def test_half_body_applies_from_nine_labelled_keypoints_as_mmpose(image_path):
    # mmpose's RandomHalfBody skips a person when ``visible.sum() < min_total_keypoints`` (9):
    # 9 labelled keypoints qualify, 8 do not.
    nine = [0, 1, 2, 5, 6, 7, 8, 9, 10]
    keypoints, aug = _half(1.0, nine)
    item = _item(image_path, aug, keypoints)
    np.testing.assert_allclose(item["center"].numpy(), KEYPOINTS[nine, :2].mean(0))
    keypoints, aug = _half(1.0, nine[:-1])
    item = _item(image_path, aug, keypoints)
    box = _instance(image_path).bbox
    np.testing.assert_allclose(item["center"].numpy(), box[:2] + box[2:] / 2)


def test_half_body_takes_the_upper_body_when_the_lower_has_too_few(image_path):
    labelled = [*UPPER, 11, 12]  # two lower-body keypoints: below mmpose's minimum of 3
    keypoints, aug = _half(0.0, labelled)
    item = _item(image_path, aug, keypoints)
    np.testing.assert_allclose(item["center"].numpy(), KEYPOINTS[UPPER, :2].mean(0))


# --- shift / scale / rotation ----------------------------------------------------------------


@pytest.mark.parametrize("udp", [False, True])
def test_rotation_scale_and_shift_keep_targets_on_the_joints(image_path, udp):
    aug = Augmentation(
        flip_prob=0.5,
        half_body_prob=0.0,
        shift_prob=1.0,
        scale_range=(0.7, 1.3),
        rotate_factor=60.0,
        rotate_prob=1.0,
    )
    codec = (UDPHeatmap if udp else MSRAHeatmap)(INPUT, HEATMAP, sigma=2)
    rotations = []
    for seed in range(6):
        item = _item(image_path, aug, udp=udp, seed=seed)
        rotations.append(float(item["rotation"]))
        pts = _in_crop(item, udp)
        assert _assert_colours_at_joints(item, udp) >= 5
        weights = item["keypoint_weights"].numpy()
        inside = (pts >= 0).all(1) & (pts[:, 0] <= INPUT[0] - 1) & (pts[:, 1] <= INPUT[1] - 1)
        assert (weights > 0).tolist() == inside.tolist()
        # each target peaks on the heatmap pixel nearest to its joint
        peaks, _ = heatmap_maximum(item["heatmaps"].numpy())
        assert np.abs(peaks - pts / codec.stride)[inside].max() <= 0.5 + 1e-6
    assert min(np.abs(rotations)) > 0 and len(set(np.sign(rotations))) == 2


def test_positive_rotation_turns_the_content_counter_clockwise():
    # mmpose's get_warp_matrix convention (as cv2.getRotationMatrix2D): at +90° the
    # head-to-feet direction (down in the image) points right in the crop.
    centre = np.array([70.0, 90.0])
    m = warp_matrix(centre, np.array([150.0, 200.0]), 90.0, INPUT)
    head, feet = apply_affine(centre + np.array([[0.0, -60.0], [0.0, 60.0]]), m)
    assert feet[0] - head[0] > 50 and abs(feet[1] - head[1]) < 1e-9


N = 10000


def _draws(aug, seed=0):
    rng = np.random.default_rng(seed)
    scale = np.array([80.0, 100.0])
    out = [random_box_transform(np.zeros(2), scale, aug, rng) for _ in range(N)]
    shift = np.stack([c for c, _, _ in out]) / (aug.shift_factor * scale)  # (N, 2) in units
    factor = np.array([s[0] / scale[0] for _, s, _ in out])
    rot = np.array([r for _, _, r in out]) / aug.rotate_factor
    return shift, factor, rot


def _truncnorm_ks(values):
    return stats.kstest(values, stats.truncnorm(-1, 1).cdf).pvalue


def test_box_transform_draws_mmpose_truncated_normals():
    aug = Augmentation()  # mmpose defaults: 0.16 / 0.3, (0.5, 1.5) / 1.0, 80° / 0.6
    shift, factor, rot = _draws(aug)
    moved = (shift != 0).any(1)
    assert abs(moved.mean() - aug.shift_prob) < 0.03
    assert abs((rot != 0).mean() - aug.rotate_prob) < 0.03
    assert np.abs(shift).max() <= 1 and np.abs(rot).max() <= 1
    assert factor.min() >= 0.5 and factor.max() <= 1.5
    # truncated (redrawn), not clipped (no mass piled on ±1) and not uniform
    for values in (shift[moved, 0], shift[moved, 1], (factor - 1.0) / 0.5, rot[rot != 0]):
        assert _truncnorm_ks(values) > 1e-3
        assert (np.abs(values) > 0.999).mean() < 0.005
        assert abs(values.std() - stats.truncnorm(-1, 1).std()) < 0.02
    assert _truncnorm_ks(np.random.default_rng(0).uniform(-1, 1, N)) < 1e-6  # the test bites


def test_box_transform_probabilities_switch_each_part_off():
    shift, factor, rot = _draws(replace(Augmentation(), shift_prob=0, scale_prob=0, rotate_prob=0))
    assert not shift.any() and (factor == 1).all() and not rot.any()


def test_truncated_normal_is_seeded_and_bounded():
    a = truncated_normal(np.random.default_rng(3), (5, 2))
    b = truncated_normal(np.random.default_rng(3), (5, 2))
    assert a.shape == (5, 2) and np.array_equal(a, b) and np.abs(a).max() <= 1
    assert isinstance(truncated_normal(np.random.default_rng(3)), float)
