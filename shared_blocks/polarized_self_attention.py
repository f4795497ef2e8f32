"""Polarized Self-Attention (Liu et al., 2021, arXiv:2107.00782).

Two branches keep high internal resolution ("polarized filtering") and end in a sigmoid
enhancement: a channel-only branch producing a ``(B, C, 1, 1)`` mask and a spatial-only branch
producing a ``(B, 1, H, W)`` mask. Faithful to the official ``PSA_p``/``PSA_s``
(``DeLightCMU/PSA``, ``semantic-segmentation/network/PSA.py``), whose method names are swapped:
there ``spatial_pool`` computes the channel mask and ``channel_pool`` the spatial one.

Channel-only branch (Wq: C->1, Wv: C->C/2, Wz: C/2->C):
    mask_ch = sigmoid(Wz(Wv(x) · softmax_HW(Wq(x))ᵀ))
Spatial-only branch (Wq, Wv: C->C/2):
    parallel:   mask_sp = sigmoid(softmax_HW(GAP(Wq(x))ᵀ · Wv(x)))
    sequential: mask_sp = sigmoid(GAP(Wq(x))ᵀ · softmax_HW(Wv(x)))
Composition:
    parallel:   out = x * mask_ch(x) + x * mask_sp(x)
    sequential: y = x * mask_ch(x);  out = y * mask_sp(y)
In the sequential variant Wz is C/2 -> C/8 -> LayerNorm -> ReLU -> C (with biases), as in
``PSA_s``; in the parallel one Wz is a single bias-free C/2 -> C projection.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from tessera.shared_blocks._checks import check_channels_first
from tessera.shared_blocks.registry import BLOCKS

MODES = ("parallel", "sequential")


def _conv1x1(cin: int, cout: int, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=1, bias=bias)


@BLOCKS.register_module()
class PolarizedSelfAttention(nn.Module):
    """Polarized self-attention on a channels-first feature map.

    Args:
        channels: C (even; a multiple of 8 for ``mode="sequential"``).
        mode: ``"parallel"`` (PSA_p) or ``"sequential"`` (PSA_s, channel then spatial).

    Shapes:
        x: ``(B, C, H, W)``; output: same.
    """

    def __init__(self, channels: int, mode: Literal["parallel", "sequential"] = "parallel"):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        half = channels // 2
        if channels % 2 or (mode == "sequential" and channels % 8):
            raise ValueError(
                f"channels={channels} must be even (a multiple of 8 for mode='sequential')"
            )
        self.channels = channels
        self.mode = mode
        # Channel-only branch.
        self.ch_wq = _conv1x1(channels, 1)
        self.ch_wv = _conv1x1(channels, half)
        if mode == "parallel":
            self.ch_wz = _conv1x1(half, channels)
        else:
            self.ch_wz = nn.Sequential(
                _conv1x1(half, half // 4, bias=True),
                nn.LayerNorm([half // 4, 1, 1]),
                nn.ReLU(),
                _conv1x1(half // 4, channels, bias=True),
            )
        # Spatial-only branch.
        self.sp_wq = _conv1x1(channels, half)
        self.sp_wv = _conv1x1(channels, half)
        for conv in (self.ch_wq, self.ch_wv, self.sp_wq, self.sp_wv):
            nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu")

    def channel_mask(self, x: torch.Tensor) -> torch.Tensor:
        """Channel-only attention mask ``(B, C, 1, 1)`` in (0, 1)."""
        b = x.shape[0]
        v = self.ch_wv(x).flatten(2)  # (B, C/2, HW)
        q = self.ch_wq(x).flatten(2).softmax(dim=-1)  # (B, 1, HW)
        z = (v @ q.transpose(1, 2)).view(b, -1, 1, 1)  # (B, C/2, 1, 1)
        return torch.sigmoid(self.ch_wz(z))

    def spatial_mask(self, x: torch.Tensor) -> torch.Tensor:
        """Spatial-only attention mask ``(B, 1, H, W)`` in (0, 1)."""
        b, _, h, w = x.shape
        q = self.sp_wq(x).mean(dim=(2, 3)).unsqueeze(1)  # (B, 1, C/2)
        v = self.sp_wv(x).flatten(2)  # (B, C/2, HW)
        # Where the softmax over HW sits differs between PSA_p and PSA_s.
        z = (q @ v).softmax(dim=-1) if self.mode == "parallel" else q @ v.softmax(dim=-1)
        return torch.sigmoid(z).view(b, 1, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_channels_first("x", x, 2, self.channels)
        if self.mode == "parallel":
            return x * self.channel_mask(x) + x * self.spatial_mask(x)
        y = x * self.channel_mask(x)
        return y * self.spatial_mask(y)
