"""X-Pool text-conditioned pooling of frames (Gorti et al., CVPR 2022, arXiv:2203.15086).

Each text embedding attends over the frames of each video (softmax over frames), giving one
pooled video embedding per (video, text) pair. Faithful to the official ``Transformer`` block
(``layer6ai-labs/xpool``, ``modules/transformer.py``):

    t, f = LN1(text), LN1(frames)                      # one shared LayerNorm
    a    = W_o · Σ_f softmax_f(k_f · q_t / sqrt(d_h)) v_f   (per head)
    a    = LN2(a);   out = LN3(a + Dropout(W_l a))

with every projection (q, k, v, o, l) initialised to the identity and zero bias. The official
code materialises all texts at once; here texts are processed in chunks of
``text_chunk_size`` so memory stays O(Bv · chunk · C).
"""

from __future__ import annotations

import torch
from torch import nn

from tessera import kernels
from tessera.shared_blocks._checks import check_divisible, check_last_dim, check_mask
from tessera.shared_blocks._heads import merge_heads, split_heads
from tessera.shared_blocks.registry import BLOCKS


@BLOCKS.register_module()
class TextConditionedPooling(nn.Module):
    """Pools video frames conditioned on each text (X-Pool).

    Args:
        dim: C, embedding width shared by texts and frames (512 for CLIP ViT-B/32).
        heads: attention heads (1 in X-Pool).
        dropout: dropout on the residual linear branch (0.3 in X-Pool).
        text_chunk_size: texts processed at once (None = all).

    Shapes:
        text: ``(Bt, C)``; video: ``(Bv, F, C)``; frame_mask: optional bool ``(Bv, F)``.
        output: ``(Bv, Bt, C)``.
    """

    def __init__(
        self, dim: int, heads: int = 1, dropout: float = 0.3, text_chunk_size: int | None = 256
    ):
        super().__init__()
        check_divisible("dim", dim, heads, "heads")
        self.dim, self.heads, self.text_chunk_size = dim, heads, text_chunk_size
        self.norm1 = nn.LayerNorm(dim)
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.linear_proj = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)
        self.norm3 = nn.LayerNorm(dim)
        for proj in (self.q_proj, self.k_proj, self.v_proj, self.out_proj, self.linear_proj):
            nn.init.eye_(proj.weight)
            nn.init.zeros_(proj.bias)

    def pool(
        self, text: torch.Tensor, video: torch.Tensor, frame_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Attention-pooled projected frames, before ``out_proj``: ``(Bv, Bt, C)``.

        Every output vector is a convex combination (per head) of ``v_proj(LN1(frames))``.
        """
        check_last_dim("text", text, 2, self.dim)
        check_last_dim("video", video, 3, self.dim)
        check_mask("frame_mask", frame_mask, video.shape[:2])
        bv = video.shape[0]
        frames = self.norm1(video)
        k = split_heads(self.k_proj(frames), self.heads)  # (Bv, H, F, Dh)
        v = split_heads(self.v_proj(frames), self.heads)
        q_all = self.q_proj(self.norm1(text))  # (Bt, C)
        chunk = self.text_chunk_size or q_all.shape[0]
        pooled = []
        for q in q_all.split(chunk):
            q = split_heads(q.unsqueeze(0), self.heads).expand(bv, -1, -1, -1)  # (Bv, H, bt, Dh)
            pooled.append(merge_heads(kernels.attention(q, k, v, key_padding_mask=frame_mask)))
        return torch.cat(pooled, dim=1)

    def forward(
        self, text: torch.Tensor, video: torch.Tensor, frame_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        attn = self.norm2(self.out_proj(self.pool(text, video, frame_mask)))
        return self.norm3(attn + self.dropout(self.linear_proj(attn)))
