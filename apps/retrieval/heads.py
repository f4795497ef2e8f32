"""Pooling heads: how frame features become a video embedding, and the text x video scores.

- ``mean``: CLIP4Clip's meanP (Luo et al., 2022): the average of the L2-normalised frame
  features, one embedding per video whatever the text.
- ``xpool``: X-Pool (Gorti et al., CVPR 2022): each text attends over the frames of each
  video (:class:`~tessera.shared_blocks.TextConditionedPooling`), one embedding per pair.
- ``tefal``: TEFAL (Ibrahimi et al., ICCV 2023, arXiv:2307.12964): two independent
  text-conditioned attentions, text→frames and text→audio tokens, summed; clips without
  audio use the video part only.

Every head maps texts ``(T, C)`` and frames ``(V, F, C)`` to cosine similarities ``(T, V)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from tessera.shared_blocks.text_conditioned_pooling import TextConditionedPooling


def _pair_cosine(text: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
    """``text (T, C)``, ``pooled (V, T, C)`` → ``(T, V)`` cosine of each text with its pooling."""
    return torch.einsum("tc,vtc->tv", F.normalize(text, dim=-1), F.normalize(pooled, dim=-1))


def xpool_attention(pool: TextConditionedPooling, text: torch.Tensor, frames: torch.Tensor):
    """The block's softmax weights over frames ``(V, T, F)``, averaged over heads."""
    h = pool.heads
    k = pool.k_proj(pool.norm1(frames))  # (V, F, C)
    q = pool.q_proj(pool.norm1(text))  # (T, C)
    v, f, c = k.shape
    k = k.view(v, f, h, c // h)
    q = q.view(-1, h, c // h)
    logits = torch.einsum("thd,vfhd->vhtf", q, k) / math.sqrt(c // h)
    return logits.softmax(dim=-1).mean(dim=1)


class MeanPoolingHead(nn.Module):
    """CLIP4Clip meanP: parameter-free average of normalised frames."""

    def forward(self, text, frames, audio=None, audio_mask=None) -> torch.Tensor:
        video = F.normalize(F.normalize(frames, dim=-1).mean(dim=1), dim=-1)  # (V, C)
        return F.normalize(text, dim=-1) @ video.T

    def frame_attention(self, text: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        v, f = frames.shape[:2]
        return frames.new_full((v, text.shape[0], f), 1.0 / f)


class XPoolHead(nn.Module):
    """X-Pool text-conditioned pooling (official block, identity-initialised)."""

    def __init__(self, dim: int, heads: int = 1, dropout: float = 0.3):
        super().__init__()
        self.pool = TextConditionedPooling(dim, heads=heads, dropout=dropout)

    def forward(self, text, frames, audio=None, audio_mask=None) -> torch.Tensor:
        return _pair_cosine(text, self.pool(text, frames))

    def frame_attention(self, text: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        return xpool_attention(self.pool, text, frames)


class TefalHead(nn.Module):
    """Text→video and text→audio cross-attention pooling, fused by summation."""

    def __init__(self, dim: int, heads: int = 1, dropout: float = 0.3):
        super().__init__()
        self.video_pool = TextConditionedPooling(dim, heads=heads, dropout=dropout)
        self.audio_pool = TextConditionedPooling(dim, heads=heads, dropout=dropout)

    def forward(self, text, frames, audio=None, audio_mask=None) -> torch.Tensor:
        if audio is None or audio_mask is None:
            raise ValueError("the tefal head needs audio tokens and their mask")
        pooled = self.video_pool(text, frames)  # (V, T, C)
        has_audio = audio_mask.any(dim=1)  # (V,)
        safe = audio_mask.clone()
        safe[~has_audio, 0] = True  # attention over an empty set is undefined
        pooled_audio = self.audio_pool(text, audio, safe)
        pooled = pooled + has_audio[:, None, None].to(pooled.dtype) * pooled_audio
        return _pair_cosine(text, pooled)

    def frame_attention(self, text: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        return xpool_attention(self.video_pool, text, frames)


def build_head(name: str, dim: int, heads: int = 1, dropout: float = 0.3) -> nn.Module:
    if name == "mean":
        return MeanPoolingHead()
    if name == "xpool":
        return XPoolHead(dim, heads, dropout)
    if name == "tefal":
        return TefalHead(dim, heads, dropout)
    raise ValueError(f"pooling must be 'xpool', 'mean' or 'tefal', got {name!r}")
