"""Axial attention (Ho et al., 2019, "Axial Attention in Multidimensional Transformers",
arXiv:1912.12180).

Full self-attention along one spatial axis at a time, every other coordinate held fixed, each
axis with its own projections. For an input ``x`` on a grid with axes a = 1..A:

    sum:        out = Σ_a Attn_a(x)
    sequential: out = Attn_A(... Attn_1(x))

Cost O(N · Σ_a L_a) instead of O(N²) for N = Π_a L_a positions. Same per-axis parameterisation
as lucidrains' ``axial-attention`` package (bias-free q/k/v, biased output projection), so
weights transfer one to one.

Positions (Ho et al., Sec. 3 / their axial positional embeddings): attention alone is
permutation-equivariant along each axis, so a learned embedding per axis, ``E_a`` of shape
``(L_a, C)``, is broadcast-added to the input before attending (``x + Σ_a E_a``). Inputs of
another length along an axis use ``E_a`` linearly interpolated to that length.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from tessera import kernels
from tessera.shared_blocks._checks import check_divisible
from tessera.shared_blocks.registry import BLOCKS

COMBINE = ("sum", "sequential")


class _AxisAttention(nn.Module):
    """Multi-head self-attention along axis -2 of ``(..., L, C)``."""

    def __init__(self, dim: int, heads: int, dim_head: int):
        super().__init__()
        self.heads = heads
        self.to_qkv = nn.Linear(dim, 3 * heads * dim_head, bias=False)
        self.to_out = nn.Linear(heads * dim_head, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        *lead, n, c = x.shape
        qkv = self.to_qkv(x.reshape(-1, n, c))
        qkv = qkv.view(qkv.shape[0], n, 3, self.heads, -1)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # (M, H, L, D) each
        out = kernels.attention(q, k, v).transpose(1, 2).reshape(-1, n, self.to_out.in_features)
        return self.to_out(out).view(*lead, n, c)


@BLOCKS.register_module()
class AxialAttention(nn.Module):
    """Self-attention along each spatial axis of a 2-D or 3-D (or n-D) grid.

    Args:
        dim: C, channels.
        num_axes: number of spatial axes of the input (2 for images, 3 for volumes/video).
        heads: number of heads.
        dim_head: per-head width (default ``dim // heads``).
        channels_first: input is ``(B, C, *spatial)``; otherwise ``(B, *spatial, C)``.
        combine: ``"sum"`` of per-axis outputs, or ``"sequential"`` application.
        axes: which spatial axes (0-based) to attend along; default all.
        positional: add the learned per-axis positional embeddings (Ho et al.).
        max_shape: embedding length per spatial axis (default 64 each); other lengths are
            interpolated.

    Shapes:
        x: ``(B, C, *spatial)`` (or ``(B, *spatial, C)``) with ``num_axes`` spatial dims;
        output: same as ``x``.
    """

    def __init__(
        self,
        dim: int,
        num_axes: int = 2,
        heads: int = 8,
        dim_head: int | None = None,
        channels_first: bool = True,
        combine: Literal["sum", "sequential"] = "sum",
        axes: Sequence[int] | None = None,
        positional: bool = True,
        max_shape: Sequence[int] | None = None,
    ):
        super().__init__()
        if combine not in COMBINE:
            raise ValueError(f"combine must be one of {COMBINE}, got {combine!r}")
        if dim_head is None:
            check_divisible("dim", dim, heads, "heads")
            dim_head = dim // heads
        self.axes = tuple(range(num_axes)) if axes is None else tuple(axes)
        if not self.axes or any(not 0 <= a < num_axes for a in self.axes):
            raise ValueError(f"axes must be a non-empty subset of 0..{num_axes - 1}, got {axes}")
        self.dim, self.num_axes = dim, num_axes
        self.channels_first, self.combine = channels_first, combine
        self.attns = nn.ModuleList(_AxisAttention(dim, heads, dim_head) for _ in self.axes)
        self.positional = positional
        if positional:
            shape = tuple(max_shape) if max_shape is not None else (64,) * num_axes
            if len(shape) != num_axes:
                raise ValueError(f"max_shape needs {num_axes} lengths, got {shape}")
            self.pos = nn.ParameterList(
                nn.Parameter(torch.randn(length, dim) * 0.02) for length in shape
            )

    def _with_positions(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` (B, *spatial, C) plus each axis's embedding broadcast over the others."""
        for a, emb in enumerate(self.pos):
            length = x.shape[1 + a]
            if emb.shape[0] != length:
                emb = nn.functional.interpolate(
                    emb.t()[None], size=length, mode="linear", align_corners=False
                )[0].t()
            view = [1] * x.dim()
            view[1 + a], view[-1] = length, emb.shape[-1]
            x = x + emb.view(view)
        return x

    def _along(self, attn: _AxisAttention, x: torch.Tensor, axis: int) -> torch.Tensor:
        # x is channels-last (B, *spatial, C); spatial axis `axis` sits at dim 1 + axis.
        return attn(x.movedim(1 + axis, -2)).movedim(-2, 1 + axis)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channel_dim = 1 if self.channels_first else -1
        if x.dim() != 2 + self.num_axes or x.shape[channel_dim] != self.dim:
            layout = "(B, C, *spatial)" if self.channels_first else "(B, *spatial, C)"
            raise ValueError(
                f"x must be {layout} with C={self.dim} and {self.num_axes} spatial axes, "
                f"got shape {tuple(x.shape)}"
            )
        if self.channels_first:
            x = x.movedim(1, -1)
        if self.positional:
            x = self._with_positions(x)
        if self.combine == "sum":
            out = sum(
                self._along(attn, x, a) for attn, a in zip(self.attns, self.axes, strict=True)
            )
        else:
            out = x
            for attn, a in zip(self.attns, self.axes, strict=True):
                out = self._along(attn, out, a)
        return out.movedim(-1, 1) if self.channels_first else out
