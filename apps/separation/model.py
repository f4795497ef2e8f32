"""MossFormer speech separation (Zhao & Ma, ICASSP 2023, arXiv:2302.11824) and a baseline.

Time-domain masking: Conv1d encoder (kernel k, stride k/2, ReLU) -> mask net -> one
ConvTranspose1d decoder per masked copy. The mask net follows the official MossFormer v1
(``modelscope`` ``models/audio/separation/mossformer.py``) so official weights load by a pure
key renaming (:mod:`tessera.apps.separation.convert`):

    GroupNorm(1, N) -> 1x1 conv -> + scaled sinusoidal position -> [JointAttention x L ->
    LayerNorm -> GroupNorm(1, N) + skip] -> PReLU -> 1x1 conv to N*K -> tanh(conv) *
    sigmoid(conv) -> 1x1 conv -> ReLU masks

Shapes: mixture ``(B, T)`` -> sources ``(B, K, T)`` (the output length equals the input length).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from tessera.shared_blocks import JointAttention


class ScaledSinusoidalEmbedding(nn.Module):
    """Absolute sinusoidal positions ``[sin(t f), cos(t f)]`` times one learnable scale.

    Shapes: returns ``(C, S)`` for ``S`` frames, to add to a ``(B, C, S)`` feature map.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))
        inv_freq = 10000.0 ** (-torch.arange(0, dim, 2).float() / dim)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, frames: int) -> torch.Tensor:
        t = torch.arange(frames, device=self.inv_freq.device, dtype=self.inv_freq.dtype)
        angles = torch.outer(t, self.inv_freq)  # (S, C/2)
        return (torch.cat((angles.sin(), angles.cos()), dim=-1) * self.scale).T


class MossFormerMaskNet(nn.Module):
    """Estimates K non-negative masks from the encoded mixture.

    Args:
        in_channels: encoder channels N.
        channels: width of the attention stack (``d_model``).
        num_spks: number of sources K.
        num_blocks: number of :class:`JointAttention` blocks.
        group_size, query_key_dim, expansion_factor, dropout: :class:`JointAttention` options.

    Shapes:
        x: ``(B, N, S)`` -> masks ``(B, K, N, S)``.
    """

    def __init__(
        self,
        in_channels: int,
        channels: int,
        num_spks: int,
        num_blocks: int,
        group_size: int = 256,
        query_key_dim: int = 128,
        expansion_factor: float = 4.0,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.num_spks = num_spks
        self.norm = nn.GroupNorm(1, in_channels, eps=1e-8)
        self.conv1d_encoder = nn.Conv1d(in_channels, channels, 1, bias=False)
        self.pos_enc = ScaledSinusoidalEmbedding(channels)
        self.blocks = nn.ModuleList(
            JointAttention(
                channels,
                group_size=group_size,
                query_key_dim=query_key_dim,
                expansion_factor=expansion_factor,
                dropout=dropout,
            )
            for _ in range(num_blocks)
        )
        self.blocks_norm = nn.LayerNorm(channels, eps=1e-6)
        self.att_norm = nn.GroupNorm(1, channels, eps=1e-8)
        self.prelu = nn.PReLU()
        self.conv1d_out = nn.Conv1d(channels, channels * num_spks, 1)
        self.output = nn.Conv1d(channels, channels, 1)
        self.output_gate = nn.Conv1d(channels, channels, 1)
        self.conv1_decoder = nn.Conv1d(channels, in_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, s = x.shape
        x = self.conv1d_encoder(self.norm(x))
        x = x + self.pos_enc(s)
        h = x.transpose(1, 2)  # (B, S, C) tokens
        for block in self.blocks:
            h = block(h)
        x = x + self.att_norm(self.blocks_norm(h).transpose(1, 2))
        x = self.conv1d_out(self.prelu(x)).reshape(b * self.num_spks, -1, s)
        x = torch.tanh(self.output(x)) * torch.sigmoid(self.output_gate(x))
        return F.relu(self.conv1_decoder(x)).reshape(b, self.num_spks, -1, s)


class MossFormer(nn.Module):
    """MossFormer separator: encoder, :class:`MossFormerMaskNet`, decoder.

    Args:
        num_spks: number of sources K.
        encoder_dim: encoder filters N (``in_channels`` / ``out_channels`` officially, 512).
        kernel_size: encoder kernel k (16 at 8 kHz); the stride is k / 2.
        channels: attention width (``d_model``, 512).
        num_blocks: attention blocks (24 for MossFormer-L).
        group_size, query_key_dim, expansion_factor, dropout: :class:`JointAttention` options.

    Shapes:
        mixture ``(B, T)`` -> sources ``(B, K, T)``.
    """

    def __init__(
        self,
        num_spks: int = 2,
        encoder_dim: int = 512,
        kernel_size: int = 16,
        channels: int = 512,
        num_blocks: int = 24,
        group_size: int = 256,
        query_key_dim: int = 128,
        expansion_factor: float = 4.0,
        dropout: float = 0.1,
    ):
        super().__init__()
        if kernel_size < 2 or kernel_size % 2:
            raise ValueError(f"kernel_size={kernel_size} must be even and >= 2")
        self.num_spks = num_spks
        self.kernel_size = kernel_size
        self.encoder = nn.Conv1d(1, encoder_dim, kernel_size, stride=kernel_size // 2, bias=False)
        self.mask_net = MossFormerMaskNet(
            encoder_dim,
            channels,
            num_spks,
            num_blocks,
            group_size=group_size,
            query_key_dim=query_key_dim,
            expansion_factor=expansion_factor,
            dropout=dropout,
        )
        self.decoder = nn.ConvTranspose1d(
            encoder_dim, 1, kernel_size, stride=kernel_size // 2, bias=False
        )

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        if mixture.dim() != 2 or mixture.shape[-1] < self.kernel_size:
            raise ValueError(
                f"mixture must be (B, T) with T >= {self.kernel_size}, got {tuple(mixture.shape)}"
            )
        b, t = mixture.shape
        feats = F.relu(self.encoder(mixture.unsqueeze(1)))  # (B, N, S)
        masked = feats.unsqueeze(1) * self.mask_net(feats)  # (B, K, N, S)
        out = self.decoder(masked.flatten(0, 1)).view(b, self.num_spks, -1)
        return F.pad(out, (0, t - out.shape[-1])) if out.shape[-1] < t else out[..., :t]


class ConvTasNet(nn.Module):
    """``torchaudio.models.ConvTasNet`` (Luo & Mesgarani, 2019) with the same ``(B, T)`` ->
    ``(B, K, T)`` interface; arguments are torchaudio's (``enc_kernel_size``, ``enc_num_feats``,
    ``msk_kernel_size``, ``msk_num_feats``, ``msk_num_hidden_feats``, ``msk_num_layers``,
    ``msk_num_stacks``)."""

    def __init__(self, num_spks: int = 2, **kwargs: Any):
        super().__init__()
        from torchaudio.models import ConvTasNet as _TorchaudioConvTasNet

        self.num_spks = num_spks
        self.net = _TorchaudioConvTasNet(num_sources=num_spks, **kwargs)

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        if mixture.dim() != 2:
            raise ValueError(f"mixture must be (B, T), got {tuple(mixture.shape)}")
        return self.net(mixture.unsqueeze(1))


ARCHITECTURES = {"mossformer": MossFormer, "convtasnet": ConvTasNet}


def build_model(arch: str, num_spks: int, net: dict[str, Any] | None = None) -> nn.Module:
    """The separator named ``arch`` (``mossformer`` | ``convtasnet``) with options ``net``."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"arch must be one of {sorted(ARCHITECTURES)}, got {arch!r}")
    return ARCHITECTURES[arch](num_spks=num_spks, **(net or {}))
