"""Aligned augmentation and the synthetic world's text semantics."""

import random

import numpy as np
import torch

from tessera.datamodules.segmentation.synth import (
    Shape,
    _relation_holds,
    make_question,
    relational_queries,
    render_scene,
)
from tessera.datamodules.segmentation.transforms import RandomScaleCropFlip, swap_left_right


def test_swap_left_right_words():
    assert swap_left_right("the circle Left of the leftmost square, right?") == (
        "the circle Right of the rightmost square, left?"
    )
    assert swap_left_right("bright lights") == "bright lights"


def test_augmentation_keeps_image_and_label_aligned():
    # label = class of the image's red channel, so alignment is checkable after any transform
    label = torch.kron(torch.randint(0, 3, (5, 5)), torch.ones(8, 8, dtype=torch.long))
    image = torch.stack([label.float() / 2, torch.zeros(40, 40), torch.zeros(40, 40)])
    aug = RandomScaleCropFlip((32, 32), (0.8, 1.3), 1.0, 255, random.Random(0))
    for _ in range(5):
        img, lab, text = aug(image, label, "the circle left of it")
        keep = lab != 255
        # nearest-resampled label equals the rounded bilinear image away from class borders
        agree = (img[0][keep] * 2).round().long() == lab[keep]
        assert agree.float().mean() > 0.8
        assert (img[:, ~keep] == 0).all()
        assert text == "the circle right of it"


def test_crop_and_flip_without_rescale_are_exact():
    # crop_size * scale equals the input size, so only cropping and flipping happen
    label = torch.randint(0, 3, (30, 30))
    image = torch.stack([label.float(), label.float().T, torch.zeros(30, 30)])
    aug = RandomScaleCropFlip((20, 20), (1.5, 1.5), 0.5, 255, random.Random(1))
    for _ in range(6):
        img, lab, _ = aug(image, label)
        assert torch.equal(img[0].long(), lab)


def test_flip_mirrors_relations_in_the_world():
    a = Shape("circle", "red", "small", 10, 10, 5)
    b = Shape("square", "blue", "small", 10, 40, 5)
    assert _relation_holds("left of", a, b)
    w = 64
    fa = Shape(a.kind, a.colour, a.size, a.cy, w - a.cx, a.r)
    fb = Shape(b.kind, b.colour, b.size, b.cy, w - b.cx, b.r)
    assert _relation_holds("right of", fa, fb)


def test_questions_name_their_target():
    rng = np.random.default_rng(1)
    kinds = {"attribute": 0, "relation": 0, "empty": 0}
    for _ in range(60):
        image, masks, shapes, semantic = render_scene(rng, 64)
        text, target, kind, answer = make_question(rng, shapes, masks)
        kinds[kind] += 1
        if kind == "empty":
            assert target.sum() == 0 and all(s.description not in text for s in shapes)
        else:
            hits = [i for i, m in enumerate(masks) if (m == target).all()]
            assert len(hits) == 1 and shapes[hits[0]].description == answer
            if kind == "attribute":
                assert answer in text
    assert min(kinds.values()) > 0


def test_relational_queries_are_unique():
    shapes = [
        Shape("circle", "red", "small", 30, 8, 5),
        Shape("circle", "green", "large", 30, 56, 10),
        Shape("square", "red", "small", 30, 32, 5),
    ]
    queries = dict(relational_queries(shapes))
    assert queries["the circle left of the red square"] == 0
    assert queries["the circle right of the red square"] == 1
