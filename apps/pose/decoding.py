"""From network heatmaps to image keypoints: flip test, codec decoding, inverse affine."""

from __future__ import annotations

import numpy as np
import torch

from tessera.datamodules.pose.datasets import COCO_FLIP
from tessera.datamodules.pose.topdown import apply_affine, warp_matrix


def flip_back(heatmaps: torch.Tensor, shift: bool) -> torch.Tensor:
    """Heatmaps of a mirrored crop back to the original orientation: mirror the width,
    swap left/right channels, and (non-UDP crops) shift one pixel right, as mmpose's
    ``flip_heatmaps(shift_heatmap=True)`` does to undo the flip's half-pixel offset."""
    out = heatmaps.flip(-1)[:, torch.as_tensor(COCO_FLIP, device=heatmaps.device)]
    if shift:
        out = out.clone()
        out[..., 1:] = out[..., :-1].clone()
    return out


def predict_heatmaps(net, images: torch.Tensor, flip_test: bool, shift: bool) -> torch.Tensor:
    """``(B, K, h, w)`` heatmaps, averaged with the flipped crop's when ``flip_test``."""
    heatmaps = net(images)
    if flip_test:
        heatmaps = 0.5 * (heatmaps + flip_back(net(images.flip(-1)), shift))
    return heatmaps


def decode_batch(
    heatmaps: torch.Tensor, codec, centers, scales, input_size, use_udp: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Image-pixel keypoints ``(B, K, 2)`` and scores ``(B, K)`` for crops of ``centers``,
    ``scales`` (``(B, 2)`` each; rotation 0)."""
    hm = heatmaps.detach().float().cpu().numpy()
    kpts, scores = [], []
    for b in range(len(hm)):
        crop_xy, score = codec.decode(hm[b])
        matrix = warp_matrix(
            np.asarray(centers[b]), np.asarray(scales[b]), 0.0, input_size, use_udp
        )
        inv = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]
        kpts.append(apply_affine(crop_xy, inv))
        scores.append(score)
    return np.stack(kpts), np.stack(scores)
