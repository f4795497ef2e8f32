"""Multi-head cross-attention (Vaswani et al., 2017), the generic member of the family.

Queries come from ``x``, keys and values from ``context`` (``x`` itself when no context is
given); ``context_mask`` marks the context tokens to attend to (True = keep). Computed by
``kernels.attention``.
"""

from __future__ import annotations

import torch
from torch import nn

from tessera import kernels
from tessera.shared_blocks._checks import check_divisible, check_last_dim, check_mask
from tessera.shared_blocks._heads import merge_heads, split_heads
from tessera.shared_blocks.registry import BLOCKS


@BLOCKS.register_module()
class CrossAttention(nn.Module):
    """Queries from ``x`` attend to ``context``.

    Args:
        dim: C, channels of ``x`` (and of the output).
        context_dim: channels of ``context`` (default ``dim``).
        heads: number of heads.
        dim_head: per-head width (default ``dim // heads``).
        qkv_bias: bias in the query/key/value projections.

    Shapes:
        x: ``(B, N, C)``; context: ``(B, M, C_ctx)``; context_mask: bool ``(B, M)``.
        output: ``(B, N, C)``.
    """

    def __init__(
        self,
        dim: int,
        context_dim: int | None = None,
        heads: int = 8,
        dim_head: int | None = None,
        qkv_bias: bool = False,
    ):
        super().__init__()
        if dim_head is None:
            check_divisible("dim", dim, heads, "heads")
            dim_head = dim // heads
        self.dim = dim
        self.context_dim = context_dim or dim
        self.heads = heads
        inner = heads * dim_head
        self.to_q = nn.Linear(dim, inner, bias=qkv_bias)
        self.to_kv = nn.Linear(self.context_dim, 2 * inner, bias=qkv_bias)
        self.to_out = nn.Linear(inner, dim)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        check_last_dim("x", x, 3, self.dim)
        if context is None:
            if self.context_dim != self.dim:
                raise ValueError("context is required when context_dim != dim")
            context = x
        check_last_dim("context", context, 3, self.context_dim)
        if context.shape[0] != x.shape[0]:
            raise ValueError(f"context has batch {context.shape[0]} but x has {x.shape[0]}")
        check_mask("context_mask", context_mask, context.shape[:2])
        q = split_heads(self.to_q(x), self.heads)
        k, v = (split_heads(t, self.heads) for t in self.to_kv(context).chunk(2, dim=-1))
        out = kernels.attention(q, k, v, key_padding_mask=context_mask)
        return self.to_out(merge_heads(out))
