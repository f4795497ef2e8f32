"""CrossViT CLS-token fusion (Chen et al., ICCV 2021, arXiv:2103.14899).

The CLS token of one branch is projected to the other branch's width, attends to that branch's
tokens (itself included as a key, ``kv_include_self``), is added back residually, projected back
and replaces the original CLS token (official ``CrossAttentionBlock``, ``IBM/CrossViT``):

    c   = P(x_cls)                          # LN -> GELU -> Linear(C -> C_ctx)
    c'  = c + Attn(q = LN(c), kv = LN([c, ctx_patches]))
    out = [P⁻(c'), x_patches]               # LN -> GELU -> Linear(C_ctx -> C)

Used by Att-SwinU-Net's cross-contextual skip connections (with the mean token as CLS).
"""

from __future__ import annotations

import torch
from torch import nn

from tessera import kernels
from tessera.shared_blocks._checks import check_divisible, check_last_dim
from tessera.shared_blocks._heads import merge_heads, split_heads
from tessera.shared_blocks.registry import BLOCKS


def _projection(cin: int, cout: int) -> nn.Module:
    # Applied even when cin == cout, as in the official code.
    return nn.Sequential(nn.LayerNorm(cin), nn.GELU(), nn.Linear(cin, cout))


@BLOCKS.register_module()
class CrossViTFusion(nn.Module):
    """The CLS token of ``x`` attends to the tokens of another branch ``context``.

    Args:
        dim: C, channels of ``x``.
        context_dim: channels of the other branch (default ``dim``).
        heads: number of heads (head width ``context_dim // heads``).
        qkv_bias: bias in the query/key/value projections.

    Shapes:
        x: ``(B, 1 + N, C)``, CLS token first.
        context: ``(B, 1 + M, C_ctx)``, CLS token first (it is replaced by the projected ``x``
            CLS as in CrossViT).
        output: ``(B, 1 + N, C)``: the fused CLS token followed by ``x``'s own patch tokens.
    """

    def __init__(
        self, dim: int, context_dim: int | None = None, heads: int = 8, qkv_bias: bool = False
    ):
        super().__init__()
        self.dim = dim
        self.context_dim = context_dim or dim
        check_divisible("context_dim", self.context_dim, heads, "heads")
        self.heads = heads
        cd = self.context_dim
        self.project = _projection(dim, cd)
        self.norm = nn.LayerNorm(cd)
        self.to_q = nn.Linear(cd, cd, bias=qkv_bias)
        self.to_k = nn.Linear(cd, cd, bias=qkv_bias)
        self.to_v = nn.Linear(cd, cd, bias=qkv_bias)
        self.to_out = nn.Linear(cd, cd)
        self.project_back = _projection(cd, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        check_last_dim("x", x, 3, self.dim)
        check_last_dim("context", context, 3, self.context_dim)
        if context.shape[0] != x.shape[0]:
            raise ValueError(f"context has batch {context.shape[0]} but x has {x.shape[0]}")
        cls = self.project(x[:, :1])  # (B, 1, C_ctx)
        tokens = self.norm(torch.cat((cls, context[:, 1:]), dim=1))  # (B, 1 + M, C_ctx)
        h = self.heads
        attn = kernels.attention(
            split_heads(self.to_q(tokens[:, :1]), h),
            split_heads(self.to_k(tokens), h),
            split_heads(self.to_v(tokens), h),
        )
        cls = cls + self.to_out(merge_heads(attn))
        return torch.cat((self.project_back(cls), x[:, 1:]), dim=1)
