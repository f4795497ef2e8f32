"""Reshapes between token layout ``(B, N, H*D)`` and head layout ``(B, H, N, D)``."""

from __future__ import annotations

import torch


def split_heads(t: torch.Tensor, heads: int) -> torch.Tensor:
    """``(B, N, H*D) -> (B, H, N, D)``."""
    b, n, _ = t.shape
    return t.view(b, n, heads, -1).transpose(1, 2)


def merge_heads(t: torch.Tensor) -> torch.Tensor:
    """``(B, H, N, D) -> (B, N, H*D)``."""
    b, h, n, d = t.shape
    return t.transpose(1, 2).reshape(b, n, h * d)
