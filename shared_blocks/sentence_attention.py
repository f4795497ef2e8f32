"""Sentence Attention Block (Khoshsirat & Kambhamettu, 2023, arXiv:2309.11593).

A sentence embedding ``s`` re-weights the channels of an image feature map. Following the
official code (``khoshsirat/embedding-attention-blocks``), the gate is a softmax over the
channels, not an SE-style sigmoid, and it depends only on ``s``:

    gate = Softmax_C(Linear(4d -> C)(ReLU(LayerNorm(Linear(d -> 4d)(s)))))
    out  = x * gate[:, :, None, None]
"""

from __future__ import annotations

import torch
from torch import nn

from tessera.shared_blocks._checks import check_last_dim
from tessera.shared_blocks.registry import BLOCKS


@BLOCKS.register_module()
class SentenceAttentionBlock(nn.Module):
    """Channel gate of a feature map from a sentence embedding.

    Args:
        channels: C, channels of the feature map.
        text_dim: d, size of the sentence embedding (384 for all-MiniLM-L6-v2).
        hidden_mult: width of the hidden layer as a multiple of ``text_dim`` (4 in the paper).

    Shapes:
        x: ``(B, C, *spatial)``, channels first (``(B, C, H, W)`` in the paper).
        s: ``(B, d)``.
        output: same as ``x``.
    """

    def __init__(self, channels: int, text_dim: int, hidden_mult: int = 4):
        super().__init__()
        self.channels = channels
        self.text_dim = text_dim
        hidden = text_dim * hidden_mult
        self.fc1 = nn.Linear(text_dim, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def gate(self, s: torch.Tensor) -> torch.Tensor:
        """Channel weights ``(B, C)``, non-negative and summing to 1 over C."""
        check_last_dim("s", s, 2, self.text_dim)
        return self.fc2(torch.relu(self.norm(self.fc1(s)))).softmax(dim=-1)

    def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        if x.dim() < 3 or x.shape[1] != self.channels:
            raise ValueError(
                f"x must be (B, {self.channels}, *spatial), got shape {tuple(x.shape)}"
            )
        if s.shape[0] != x.shape[0]:
            raise ValueError(f"s has batch {s.shape[0]} but x has batch {x.shape[0]}")
        gate = self.gate(s)  # (B, C)
        return x * gate.view(*gate.shape, *([1] * (x.dim() - 2)))
