"""Rotary position embedding (Su et al., 2021, arXiv:2104.09864), partial and interleaved.

Rotates the first ``dim`` features of each token in adjacent pairs ``(x[2i], x[2i+1])`` by the
angle ``pos * theta^(-2i/dim)`` and passes the remaining features through (the GPT-J style
partial rotary that FLASH and MossFormer use with ``dim = min(32, qk_dim)``; same convention as
the ``rotary-embedding-torch`` package).
"""

from __future__ import annotations

import torch
from torch import nn


class RotaryEmbedding(nn.Module):
    """Applies rotary position embedding along the sequence axis (-2).

    Args:
        dim: number of leading features rotated (even).
        theta: base of the geometric frequency ladder.

    Shapes:
        x: ``(..., N, D)`` (or N at ``seq_dim``) with ``D >= dim``; output: same.
    """

    def __init__(self, dim: int, theta: float = 10000.0):
        super().__init__()
        if dim % 2:
            raise ValueError(f"dim={dim} must be even")
        self.dim = dim
        inv_freq = theta ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)
        self.register_buffer("inv_freq", inv_freq.float(), persistent=False)

    def forward(self, x: torch.Tensor, offset: int = 0, seq_dim: int = -2) -> torch.Tensor:
        n = x.shape[seq_dim]
        pos = torch.arange(offset, offset + n, device=x.device, dtype=torch.float32)
        angles = torch.outer(pos, self.inv_freq.to(x.device, torch.float32)).to(
            x.dtype
        )  # (N, dim/2)
        angles = angles.view(n, *([1] * (-seq_dim - 2)), -1)  # broadcast over dims after N
        cos, sin = angles.cos(), angles.sin()
        rot, rest = x[..., : self.dim], x[..., self.dim :]
        even, odd = rot[..., 0::2], rot[..., 1::2]  # (..., N, dim/2)
        rotated = torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1)
        return torch.cat((rotated.flatten(-2), rest), dim=-1)
