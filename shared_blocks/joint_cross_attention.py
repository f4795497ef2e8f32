"""MV-VTON joint attention: global + local garment tokens (Wang et al., AAAI 2025,
"MV-VTON: Multi-View Virtual Try-On with Diffusion Models", arXiv:2404.17364).

Person tokens ``x`` attend to the global garment token(s) with one set of projections and,
separately, to the local garment tokens with their own query/key/value projections; the local
result is added through a learnable per-channel fusion vector initialised to zero, so a freshly
inserted block behaves exactly like plain global cross-attention (official ``CrossAttention`` in
``hywang2002/MV-VTON``, ``ldm/modules/attention.py``; there the context is
``cat([global, local], dim=1)`` and ``ip_scale`` is the fusion vector):

    out = W_o( Attn(q(x), k(c_g), v(c_g)) + Attn(q'(x), k'(c_l), v'(c_l)) ⊙ s ),   s = 0 at init
"""

from __future__ import annotations

import torch
from torch import nn

from tessera import kernels
from tessera.shared_blocks._checks import check_last_dim, check_mask
from tessera.shared_blocks._heads import merge_heads, split_heads
from tessera.shared_blocks.registry import BLOCKS


@BLOCKS.register_module()
class JointCrossAttention(nn.Module):
    """Joint global/local cross-attention with a zero-initialised fusion vector.

    Args:
        dim: C, channels of the person tokens ``x``.
        context_dim: channels of the garment tokens.
        heads: number of heads.
        dim_head: per-head width (64 in MV-VTON / Stable Diffusion).
        num_global: how many leading context tokens are global (1 in MV-VTON: the CLIP token).
        dropout: dropout after the output projection.

    Shapes:
        x: ``(B, N, C)``.
        context: ``(B, num_global + M, C_ctx)``, global token(s) first, then M local tokens.
        local_mask: optional bool ``(B, M)``, True = keep.
        output: ``(B, N, C)``.
    """

    def __init__(
        self,
        dim: int,
        context_dim: int,
        heads: int = 8,
        dim_head: int = 64,
        num_global: int = 1,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.dim, self.context_dim, self.heads, self.num_global = (
            dim,
            context_dim,
            heads,
            num_global,
        )
        inner = heads * dim_head
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim, inner, bias=False)
        self.to_q_local = nn.Linear(dim, inner, bias=False)
        self.to_k_local = nn.Linear(context_dim, inner, bias=False)
        self.to_v_local = nn.Linear(context_dim, inner, bias=False)
        self.fusion = nn.Parameter(torch.zeros(inner))
        self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.Dropout(dropout))

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, local_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        check_last_dim("x", x, 3, self.dim)
        check_last_dim("context", context, 3, self.context_dim)
        if context.shape[0] != x.shape[0] or context.shape[1] <= self.num_global:
            raise ValueError(
                f"context must be ({x.shape[0]}, {self.num_global} + M, {self.context_dim}) "
                f"with M >= 1 local tokens, got shape {tuple(context.shape)}"
            )
        c_g, c_l = context[:, : self.num_global], context[:, self.num_global :]
        check_mask("local_mask", local_mask, c_l.shape[:2])
        h = self.heads
        glob = kernels.attention(
            split_heads(self.to_q(x), h),
            split_heads(self.to_k(c_g), h),
            split_heads(self.to_v(c_g), h),
        )
        local = kernels.attention(
            split_heads(self.to_q_local(x), h),
            split_heads(self.to_k_local(c_l), h),
            split_heads(self.to_v_local(c_l), h),
            key_padding_mask=local_mask,
        )
        return self.to_out(merge_heads(glob) + merge_heads(local) * self.fusion)
