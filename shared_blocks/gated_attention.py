"""Gated multi-head self-attention (Qiu et al., 2025, "Gated Attention for Large Language
Models: Non-linearity, Sparsity, and Attention-Sink-Free", arXiv:2505.06708).

The paper's best variant (G1): an elementwise, head-specific sigmoid gate computed from the
block input multiplies the SDPA output before the output projection,

    Y_h = softmax(Q_h K_hᵀ / sqrt(d)) V_h ⊙ sigmoid(X W_θ,h),    out = [Y_1 .. Y_H] W_O,

fused into ``kernels.attention(..., gate=...)``. With ``gate=False`` it is plain multi-head
self-attention.
"""

from __future__ import annotations

import torch
from torch import nn

from tessera import kernels
from tessera.shared_blocks._checks import check_divisible, check_last_dim, check_mask
from tessera.shared_blocks._heads import merge_heads, split_heads
from tessera.shared_blocks.registry import BLOCKS


@BLOCKS.register_module()
class GatedMultiheadAttention(nn.Module):
    """Self-attention with a head-specific elementwise sigmoid output gate.

    Args:
        dim: C, token channels.
        heads: number of heads.
        qkv_bias: bias in the query/key/value (and gate) projections.
        gate: apply the sigmoid gate (False gives standard multi-head attention).
        dim_head: per-head width (default ``dim // heads``).
        causal: position i attends to positions <= i only.

    Shapes:
        x: ``(B, N, C)``; key_padding_mask: bool ``(B, N)``, True = keep; output: ``(B, N, C)``.
    """

    def __init__(
        self,
        dim: int,
        heads: int = 8,
        qkv_bias: bool = True,
        gate: bool = True,
        dim_head: int | None = None,
        causal: bool = False,
    ):
        super().__init__()
        if dim_head is None:
            check_divisible("dim", dim, heads, "heads")
            dim_head = dim // heads
        self.dim, self.heads, self.causal = dim, heads, causal
        inner = heads * dim_head
        self.qkv = nn.Linear(dim, 3 * inner, bias=qkv_bias)
        self.gate = nn.Linear(dim, inner, bias=qkv_bias) if gate else None
        self.proj = nn.Linear(inner, dim)

    def forward(
        self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        check_last_dim("x", x, 3, self.dim)
        check_mask("key_padding_mask", key_padding_mask, x.shape[:2])
        q, k, v = (split_heads(t, self.heads) for t in self.qkv(x).chunk(3, dim=-1))
        gate = None if self.gate is None else split_heads(self.gate(x), self.heads)
        out = kernels.attention(
            q, k, v, key_padding_mask=key_padding_mask, causal=self.causal, gate=gate
        )
        return self.proj(merge_heads(out))
