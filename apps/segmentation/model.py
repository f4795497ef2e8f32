"""Segmentation networks on timm backbones (``features_only``) with Tessera attention blocks.

- :class:`SemanticSegmenter`: top-down decoder with :class:`AxialAttention` (Ho et al.,
  2019) at the lowest resolution and :class:`PolarizedSelfAttention` (Liu et al., 2021)
  before the 1x1 head.
- :class:`SentenceAttentionSegmenter`: the Sentence Attention Block design (Khoshsirat &
  Kambhamettu, 2023, arXiv:2309.11593): instance-normalised input, one
  :class:`SentenceAttentionBlock` per backbone scale gating its channels from the sentence
  embedding, top-down merge (1x1 conv + BN on the coarser map, bilinear upsample, add,
  ReLU), dropout, 1x1 classifier, bilinear upsample to the input size. Binary output.

Images enter as float ``(B, 3, H, W)`` in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import timm
import torch
import torch.nn.functional as F
from torch import nn

from tessera.apps.segmentation.text import build_text_encoder
from tessera.shared_blocks import AxialAttention, PolarizedSelfAttention, SentenceAttentionBlock

Bottleneck = Literal["axial", "full", "none"]


def _check_image(image: torch.Tensor) -> None:
    if image.dim() != 4 or image.shape[1] != 3 or not image.is_floating_point():
        raise ValueError(
            f"image must be a float (B, 3, H, W) tensor, got {image.dtype} {tuple(image.shape)}"
        )


def create_backbone(name: str, pretrained: bool, out_indices: Sequence[int]) -> nn.Module:
    """A timm feature extractor; ``pretrained`` weights come from timm's cache/hub if asked."""
    return timm.create_model(
        name, features_only=True, pretrained=pretrained, out_indices=tuple(out_indices)
    )


class MeanStd(nn.Module):
    """Fixed per-channel normalisation with a timm ``pretrained_cfg``'s mean and std."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.register_buffer("mean", torch.tensor(cfg["mean"]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(cfg["std"]).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class FullAttention2d(nn.Module):
    """Global self-attention over all H*W positions (the O(N^2) peer of axial attention).

    Same per-head parameterisation as :class:`AxialAttention`, applied to the flattened grid
    (without positional embeddings: the benchmark compares the attention patterns).
    """

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.attn = AxialAttention(dim, num_axes=1, heads=heads, positional=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        return self.attn(x.flatten(2)).view(b, c, h, w)


def _conv_bn_relu(cin: int, cout: int, k: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU()
    )


class SemanticSegmenter(nn.Module):
    """timm backbone + axial-attention bottleneck + top-down decoder + PSA + 1x1 head.

    Args:
        num_classes: K output classes.
        backbone: timm model name.
        pretrained: load timm's pretrained weights (needs them cached or a download).
        out_indices: backbone stages to decode (coarsest last).
        decoder_dim: decoder channels D.
        bottleneck: ``axial`` attention at the coarsest map, ``full`` attention, or ``none``.
        heads: attention heads at the bottleneck.
        psa_mode: ``parallel`` or ``sequential`` polarized self-attention.
        dropout: dropout before the classifier.
        axial_positional: learned per-axis positional embeddings in the axial bottleneck
            (Ho et al.; checkpoints saved before they existed load with False).

    Shapes:
        image: ``(B, 3, H, W)`` -> logits ``(B, K, H, W)``.
    """

    def __init__(
        self,
        num_classes: int,
        backbone: str = "lcnet_050",
        pretrained: bool = False,
        out_indices: Sequence[int] = (1, 2, 3),
        decoder_dim: int = 64,
        bottleneck: Bottleneck = "axial",
        heads: int = 4,
        psa_mode: Literal["parallel", "sequential"] = "parallel",
        dropout: float = 0.1,
        axial_positional: bool = True,
    ):
        super().__init__()
        self.backbone = create_backbone(backbone, pretrained, out_indices)
        self.input_norm = MeanStd(self.backbone.pretrained_cfg)
        channels = self.backbone.feature_info.channels()
        self.lateral = nn.ModuleList(_conv_bn_relu(c, decoder_dim) for c in channels)
        attention = {
            "axial": lambda: AxialAttention(
                decoder_dim, num_axes=2, heads=heads, positional=axial_positional
            ),
            "full": lambda: FullAttention2d(decoder_dim, heads),
            "none": nn.Identity,
        }
        if bottleneck not in attention:
            raise ValueError(f"bottleneck must be one of {list(attention)}, got {bottleneck!r}")
        self.bottleneck = attention[bottleneck]()
        self.bottleneck_norm = nn.BatchNorm2d(decoder_dim)
        self.fuse = _conv_bn_relu(decoder_dim, decoder_dim, k=3)
        self.psa = PolarizedSelfAttention(decoder_dim, mode=psa_mode)
        self.head = nn.Sequential(nn.Dropout2d(dropout), nn.Conv2d(decoder_dim, num_classes, 1))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        _check_image(image)
        feats = self.backbone(self.input_norm(image))
        y = self.lateral[-1](feats[-1])  # (B, D, h, w), coarsest
        y = y + self.bottleneck_norm(self.bottleneck(y))
        for lateral, f in zip(self.lateral[-2::-1], feats[-2::-1], strict=True):
            y = F.interpolate(y, size=f.shape[-2:], mode="bilinear", align_corners=False)
            y = y + lateral(f)
        y = self.psa(self.fuse(y))
        logits = self.head(y)
        return F.interpolate(logits, size=image.shape[-2:], mode="bilinear", align_corners=False)


class MergeBlock(nn.Module):
    """Top-down merge: ``ReLU(up(BN(conv1x1(coarse))) + fine)``."""

    def __init__(self, coarse_channels: int, fine_channels: int):
        super().__init__()
        self.proj = nn.Sequential(
            nn.Conv2d(coarse_channels, fine_channels, 1, bias=False),
            nn.BatchNorm2d(fine_channels),
        )

    def forward(self, coarse: torch.Tensor, fine: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(
            self.proj(coarse), size=fine.shape[-2:], mode="bilinear", align_corners=False
        )
        return torch.relu(up + fine)


class SentenceAttentionSegmenter(nn.Module):
    """Text-conditioned binary segmentation with one Sentence Attention Block per scale.

    Args:
        text_encoder: ``{class_path, init_args}`` of a sentence encoder (see
            :mod:`tessera.apps.segmentation.text`); None = :class:`TinyTextEncoder`.
        backbone: timm model name (the paper: EfficientNet-B7).
        pretrained: load timm's pretrained backbone weights.
        out_indices: backbone stages (the paper taps all five scales).
        dropout: dropout before the classifier (0.5 in the paper).
        hidden_mult: SAB hidden width as a multiple of the text dim (4 in the paper).
        use_sab: False removes the blocks (ablation/benchmark: the text is then unused).
        input_norm: ``instance`` (the paper: ``InstanceNorm2d(3, track_running_stats=True)``,
            per-image statistics in training, running ones in eval) or ``mean_std`` (the
            backbone's fixed mean/std, which keeps absolute colours: the tiny config's
            choice, since its questions name colours).
        rescale_gates: multiply each scale's gated features by its channel count C_s, so a
            uniform gate is the identity (the paper: False, features shrink by ~1/C_s; the
            tiny config sets True, which trains much faster from scratch).

    Shapes:
        image: ``(B, 3, H, W)``, texts: B strings (or ``embedding`` ``(B, d)``)
        -> logits ``(B, 1, H, W)``.
    """

    def __init__(
        self,
        text_encoder: dict | None = None,
        backbone: str = "lcnet_050",
        pretrained: bool = False,
        out_indices: Sequence[int] = (0, 1, 2, 3, 4),
        dropout: float = 0.5,
        hidden_mult: int = 4,
        use_sab: bool = True,
        input_norm: Literal["instance", "mean_std"] = "instance",
        rescale_gates: bool = False,
    ):
        super().__init__()
        self.rescale_gates = rescale_gates
        self.text_encoder = build_text_encoder(text_encoder)
        self.backbone = create_backbone(backbone, pretrained, out_indices)
        if input_norm == "instance":
            self.input_norm = nn.InstanceNorm2d(3, track_running_stats=True)
        elif input_norm == "mean_std":
            self.input_norm = MeanStd(self.backbone.pretrained_cfg)
        else:
            raise ValueError(f"input_norm must be 'instance' or 'mean_std', got {input_norm!r}")
        channels = self.backbone.feature_info.channels()
        dim = self.text_encoder.dim
        self.sab = (
            nn.ModuleList(SentenceAttentionBlock(c, dim, hidden_mult) for c in channels)
            if use_sab
            else None
        )
        self.merge = nn.ModuleList(
            MergeBlock(c_coarse, c_fine)
            for c_fine, c_coarse in zip(channels[:-1], channels[1:], strict=True)
        )
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Conv2d(channels[0], 1, 1)

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """Sentence embeddings ``(B, d)``."""
        return self.text_encoder(texts)

    def gates(self, embedding: torch.Tensor) -> list[torch.Tensor]:
        """Per-scale channel gates ``[(B, C_s)]`` (softmax over channels) for an embedding."""
        if self.sab is None:
            return []
        return [block.gate(embedding) for block in self.sab]

    def forward(
        self,
        image: torch.Tensor,
        texts: list[str] | None = None,
        embedding: torch.Tensor | None = None,
    ) -> torch.Tensor:
        _check_image(image)
        if embedding is None:
            if texts is None:
                raise ValueError("pass texts (list of B strings) or embedding (B, d)")
            if len(texts) != image.shape[0]:
                raise ValueError(f"got {len(texts)} texts for a batch of {image.shape[0]} images")
            embedding = self.encode_text(texts)
        feats = self.backbone(self.input_norm(image))
        if self.sab is not None:
            feats = [block(f, embedding) for block, f in zip(self.sab, feats, strict=True)]
            if self.rescale_gates:
                feats = [f * f.shape[1] for f in feats]
        y = feats[-1]
        for merge, f in zip(self.merge[::-1], feats[-2::-1], strict=True):
            y = merge(y, f)
        logits = self.classifier(self.dropout(y))
        return F.interpolate(logits, size=image.shape[-2:], mode="bilinear", align_corners=False)
