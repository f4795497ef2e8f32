"""Augmentations that move an image and its label map together.

Images are float ``(3, H, W)`` in [0, 1], labels int64 ``(H, W)``. Images are resampled
bilinearly, labels with nearest neighbour, padding uses ``ignore_index`` for labels so padded
pixels never count. A horizontal flip mirrors "left" and "right", so for referring text the
words are swapped (:func:`swap_left_right`).
"""

from __future__ import annotations

import random
import re

import torch
import torch.nn.functional as F

_LR = {"left": "right", "right": "left", "leftmost": "rightmost", "rightmost": "leftmost"}
_LR_WORDS = re.compile(r"\b(leftmost|rightmost|left|right)\b", re.IGNORECASE)


def swap_left_right(text: str) -> str:
    """Swap left/right words, keeping capitalisation ("Left of" -> "Right of")."""

    def repl(m: re.Match) -> str:
        word = _LR[m.group(0).lower()]
        return word.capitalize() if m.group(0)[0].isupper() else word

    return _LR_WORDS.sub(repl, text)


def resize_pair(
    image: torch.Tensor, label: torch.Tensor | None, size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Resize to ``size`` = (H, W): bilinear image, nearest label."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image, label
    image = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0]
    if label is not None:
        label = F.interpolate(label[None, None].float(), size=size, mode="nearest")[0, 0].long()
    return image, label


def keep_ratio_size(height: int, width: int, scale: tuple[int, int]) -> tuple[int, int]:
    """mmcv ``rescale_size`` / mmseg ``Resize(scale, keep_ratio=True)``: the (H, W) that fits
    ``scale`` = (long edge, short edge) with the aspect ratio kept."""
    long_edge, short_edge = max(scale), min(scale)
    factor = min(long_edge / max(height, width), short_edge / min(height, width))
    return max(1, int(height * factor + 0.5)), max(1, int(width * factor + 0.5))


class RandomScaleCropFlip:
    """Random keep-ratio rescale, random crop (padding if needed) and horizontal flip, aligned.

    Args:
        crop_size: output (H, W).
        scale_range: ratio range r ~ U(scale_range) of the random rescale.
        flip_prob: probability of a horizontal flip.
        ignore_index: label value for padded pixels.
        generator: ``random.Random`` to draw from (default: the ``random`` module).
        scale: mmseg ``RandomResize(scale, ratio_range, keep_ratio=True)``: the image is fit
            (aspect kept) into ``scale * r`` = (long, short edge). None: its short side is
            resized to the crop's short side times r (images already at the crop size).
    """

    def __init__(
        self,
        crop_size: tuple[int, int],
        scale_range: tuple[float, float] = (0.75, 1.25),
        flip_prob: float = 0.5,
        ignore_index: int = 255,
        generator: random.Random | None = None,
        scale: tuple[int, int] | None = None,
    ):
        self.crop_size = tuple(crop_size)
        self.scale_range = tuple(scale_range)
        self.flip_prob = flip_prob
        self.ignore_index = ignore_index
        self.rng = generator or random  # the module: seeded per DataLoader worker
        self.scale = tuple(scale) if scale is not None else None

    def _target_size(self, height: int, width: int, r: float) -> tuple[int, int]:
        if self.scale is not None:
            return keep_ratio_size(height, width, (self.scale[0] * r, self.scale[1] * r))
        short = min(self.crop_size) * r
        factor = short / min(height, width)
        return max(1, round(height * factor)), max(1, round(width * factor))

    def __call__(
        self, image: torch.Tensor, label: torch.Tensor, text: str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, str | None]:
        ch, cw = self.crop_size
        s = self.rng.uniform(*self.scale_range)
        size = self._target_size(*label.shape[-2:], s)
        image, label = resize_pair(image, label, size)
        pad_h, pad_w = max(0, ch - size[0]), max(0, cw - size[1])
        if pad_h or pad_w:
            image = F.pad(image, (0, pad_w, 0, pad_h), value=0.0)
            label = F.pad(label, (0, pad_w, 0, pad_h), value=self.ignore_index)
        h, w = label.shape
        top, left = self.rng.randint(0, h - ch), self.rng.randint(0, w - cw)
        image = image[:, top : top + ch, left : left + cw]
        label = label[top : top + ch, left : left + cw]
        if self.rng.random() < self.flip_prob:
            image, label = image.flip(-1), label.flip(-1)
            text = swap_left_right(text) if text is not None else None
        return image.contiguous(), label.contiguous(), text
