"""mmseg's test-time protocol: whole-image or sliding-window logits, resized back bilinearly
to each image's original size (``EncoderDecoder.inference`` / ``slide_inference`` and
``postprocess_result`` in mmsegmentation).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
import torch.nn.functional as F

Inference = Literal["whole", "slide"]


def slide_logits(
    forward: Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    crop: tuple[int, int],
    stride: tuple[int, int],
) -> torch.Tensor:
    """Average the logits of overlapping ``crop`` windows taken every ``stride`` pixels.

    Windows follow mmseg: ``max(H - crop + stride - 1, 0) // stride + 1`` rows of windows,
    the last one shifted back inside the image; images smaller than a crop are one window.

    Shapes:
        image: ``(B, 3, H, W)`` -> logits ``(B, K, H, W)``.
    """
    (ch, cw), (sh, sw) = crop, stride
    _, _, h, w = image.shape
    rows = max(h - ch + sh - 1, 0) // sh + 1
    cols = max(w - cw + sw - 1, 0) // sw + 1
    total, count = None, image.new_zeros((1, 1, h, w))
    for r in range(rows):
        for c in range(cols):
            y2, x2 = min(r * sh + ch, h), min(c * sw + cw, w)
            y1, x1 = max(y2 - ch, 0), max(x2 - cw, 0)
            out = forward(image[:, :, y1:y2, x1:x2])
            if total is None:
                total = image.new_zeros((image.shape[0], out.shape[1], h, w))
            total[:, :, y1:y2, x1:x2] += out
            count[:, :, y1:y2, x1:x2] += 1
    return total / count


def check_inference(mode: str, crop: Sequence[int] | None, stride: Sequence[int] | None) -> None:
    if mode not in ("whole", "slide"):
        raise ValueError(f"inference must be 'whole' or 'slide', got {mode!r}")
    if mode == "slide" and (crop is None or stride is None):
        raise ValueError("slide inference needs test_crop and test_stride, e.g. [512, 512]")


def network_logits(
    forward: Callable[[torch.Tensor], torch.Tensor],
    image: torch.Tensor,
    mode: Inference = "whole",
    crop: Sequence[int] | None = None,
    stride: Sequence[int] | None = None,
) -> torch.Tensor:
    """Logits at the network input size, whole-image or sliding-window."""
    check_inference(mode, crop, stride)
    if mode == "whole":
        return forward(image)
    return slide_logits(forward, image, tuple(crop), tuple(stride))


def to_original_size(
    logits: torch.Tensor, img_sizes: torch.Tensor, orig_sizes: torch.Tensor
) -> list[torch.Tensor]:
    """Per image: crop the padding (``img_sizes`` (B, 2)), resize bilinearly to
    ``orig_sizes`` (B, 2). Returns ``[(K, H_i, W_i)]``."""
    out = []
    for n in range(logits.shape[0]):
        h, w = (int(v) for v in img_sizes[n])
        size = tuple(int(v) for v in orig_sizes[n])
        crop = logits[n : n + 1, :, :h, :w]
        if crop.shape[-2:] != size:
            crop = F.interpolate(crop, size=size, mode="bilinear", align_corners=False)
        out.append(crop[0])
    return out
