"""Pixel-space MV-VTON (Wang et al., "MV-VTON: Multi-View Virtual Try-On with Diffusion
Models", AAAI 2025, arXiv:2404.17364) at a scale that trains on a CPU.

The published model is a Stable-Diffusion-size latent UNet; here the same method runs in pixel
space (``latent.py`` holds the diffusers-based latent configuration for GPUs):

- **Input** ``cat[x_t (3), agnostic person (3), inpainting mask (1), pre-aligned garment (3)]``
  = 10 channels (Paint-by-Example's 9-channel inpainting input plus MV-VTON's ``warp_feat``).
- **Global garment token** (hard view selection): a garment encoder run on the garment chosen
  by the view (front, or back for back views) → 1 token.
- **Local garment tokens** (soft selection): a trainable encoder (the ControlNet copy of the
  reference) runs on *both* garments; each level's features are space-to-depth'ed into tokens
  and re-weighted by the pose similarity of person and garment skeletons,
  ``W = softmax((P_person Wp)ᵀ (P_garment Wc) / √N)`` (C × C), front and back tokens
  concatenated. We add the re-weighted tokens to the plain ones (``T + T W``) so an untrained
  selection starts as the identity rather than a channel average.
- **Joint attention** in the decoder: :class:`~tessera.shared_blocks.JointCrossAttention`
  (global K/V + separate local Q/K/V, zero-initialised fusion vector).

Shapes: images ``(B, 3, H, W)`` in [-1, 1], mask ``(B, 1, H, W)`` (1 = generate), tokens
``(B, N, C)``; H and W divisible by ``2 ** (len(channels) - 1)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from tessera.shared_blocks.joint_cross_attention import JointCrossAttention


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding ``(B,) → (B, dim)`` (DDPM / Transformer)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([args.cos(), args.sin()], dim=-1)


def norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels), channels)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice with the time embedding added in between (DDPM)."""

    def __init__(self, cin: int, cout: int, temb: int):
        super().__init__()
        self.block1 = nn.Sequential(norm(cin), nn.SiLU(), nn.Conv2d(cin, cout, 3, padding=1))
        self.temb = nn.Linear(temb, cout)
        self.block2 = nn.Sequential(norm(cout), nn.SiLU(), nn.Conv2d(cout, cout, 3, padding=1))
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.block1(x) + self.temb(temb)[:, :, None, None]
        return self.skip(x) + self.block2(h)


class GarmentAttention(nn.Module):
    """Pre-norm residual joint cross-attention of person features to garment tokens."""

    def __init__(self, channels: int, context_dim: int, heads: int, dim_head: int):
        super().__init__()
        self.norm = norm(channels)
        self.attn = JointCrossAttention(channels, context_dim, heads, dim_head, num_global=1)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)  # (B, HW, C)
        out = self.attn(tokens, context).transpose(1, 2).reshape(b, c, h, w)
        return x + out


def space_to_depth(x: torch.Tensor, s: int = 2) -> torch.Tensor:
    """``(B, C, H, W) → (B, C s², H/s, W/s)``."""
    return F.pixel_unshuffle(x, s)


class PoseProjection(nn.Module):
    """Skeleton image ``(B, 3, H, W)`` → pose tokens ``(B, N, C)`` (MV-VTON ``PoseProjModel``:
    convolutions, GELU and space-to-depth, a linear map and LayerNorm)."""

    def __init__(self, context_dim: int, grid: tuple[int, int] = (8, 6)):
        super().__init__()
        self.grid = tuple(grid)
        self.convs = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.GELU(),
        )
        self.proj = nn.Linear(32, context_dim)
        self.norm = nn.LayerNorm(context_dim)

    def forward(self, skeleton: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(self.convs(skeleton), self.grid)  # (B, 32, gh, gw)
        return self.norm(self.proj(x.flatten(2).transpose(1, 2)))  # (B, N, C)


class SoftSelection(nn.Module):
    """Pose-similarity re-weighting of one garment's local tokens (per level)."""

    def __init__(self, context_dim: int):
        super().__init__()
        self.to_person = nn.Linear(context_dim, context_dim, bias=False)
        self.to_garment = nn.Linear(context_dim, context_dim, bias=False)

    def forward(self, tokens, pose_person, pose_garment) -> torch.Tensor:
        p, g = self.to_person(pose_person), self.to_garment(pose_garment)  # (B, N, C)
        weights = torch.softmax(p.transpose(1, 2) @ g / math.sqrt(p.shape[1]), dim=-1)  # (B,C,C)
        return tokens + tokens @ weights


class GarmentEncoder(nn.Module):
    """Global garment token: conv stack, global pooling, MLP → ``(B, 1, C)``."""

    def __init__(self, channels: tuple[int, ...], context_dim: int):
        super().__init__()
        layers, cin = [], 4
        for c in channels[1:]:
            layers += [nn.Conv2d(cin, c, 3, stride=2, padding=1), norm(c), nn.SiLU()]
            cin = c
        self.convs = nn.Sequential(*layers)
        self.mlp = nn.Sequential(
            nn.Linear(cin, context_dim), nn.SiLU(), nn.Linear(context_dim, context_dim)
        )
        self.norm = nn.LayerNorm(context_dim)

    def forward(self, garment: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.convs(torch.cat([garment * mask, mask], 1)).mean((2, 3))
        return self.norm(self.mlp(x))[:, None]


class LocalGarmentEncoder(nn.Module):
    """ControlNet-style trainable encoder of a garment, mirroring the UNet's levels from 1 on
    (a strided stem skips the full-resolution level, which carries no tokens); the levels in
    ``levels`` become tokens (space-to-depth 2, Linear to ``context_dim``)."""

    def __init__(self, channels: tuple[int, ...], context_dim: int, levels: tuple[int, ...]):
        super().__init__()
        self.levels = tuple(levels)
        self.stem = nn.Conv2d(4, channels[1], 3, stride=2, padding=1)
        self.stages = nn.ModuleList()
        cin = channels[1]
        for i in range(1, max(self.levels) + 1):
            c = channels[i]
            self.stages.append(
                nn.Sequential(
                    nn.Conv2d(cin, c, 3, stride=1 if i == 1 else 2, padding=1),
                    norm(c),
                    nn.SiLU(),
                    nn.Conv2d(c, c, 3, padding=1),
                    norm(c),
                    nn.SiLU(),
                )
            )
            cin = c
        self.to_tokens = nn.ModuleDict(
            {str(i): nn.Linear(4 * channels[i], context_dim) for i in self.levels}
        )

    def forward(self, garment: torch.Tensor, mask: torch.Tensor) -> dict[int, torch.Tensor]:
        x = self.stem(torch.cat([garment, mask], 1))
        tokens = {}
        for i, stage in enumerate(self.stages, start=1):
            x = stage(x)
            if i in self.levels:
                t = space_to_depth(x).flatten(2).transpose(1, 2)  # (B, HW/4, 4C)
                tokens[i] = self.to_tokens[str(i)](t)
        return tokens


class TryOnUNet(nn.Module):
    """Conditional UNet of MV-VTON in pixel space.

    Args:
        channels: widths per resolution level (level 0 = full resolution).
        context_dim: garment-token width.
        heads, dim_head: joint-attention heads.
        attention_levels: decoder levels with joint garment attention.
        pose_grid: pose-token grid ``(gh, gw)``.
        diffusion: True → predicts ε from a noisy image (10 input channels); False → the
            regressor baseline, predicting the image from the conditions (7 channels).
    """

    def __init__(
        self,
        channels: tuple[int, ...] = (16, 32, 64, 128),
        context_dim: int = 64,
        heads: int = 2,
        dim_head: int = 32,
        attention_levels: tuple[int, ...] = (2, 3),
        pose_grid: tuple[int, int] = (8, 6),
        diffusion: bool = True,
    ):
        super().__init__()
        channels = tuple(channels)
        self.channels, self.diffusion = channels, diffusion
        self.attention_levels = tuple(attention_levels)
        temb = channels[0] * 4
        self.temb = nn.Sequential(nn.Linear(channels[0], temb), nn.SiLU(), nn.Linear(temb, temb))
        self.conv_in = nn.Conv2d(10 if diffusion else 7, channels[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        cin = channels[0]
        for i, c in enumerate(channels):
            self.down.append(ResBlock(cin, c, temb))
            last = i == len(channels) - 1
            self.downsample.append(nn.Identity() if last else nn.Conv2d(c, c, 3, 2, 1))
            cin = c
        self.mid = ResBlock(cin, cin, temb)
        self.up = nn.ModuleList()
        self.attn = nn.ModuleDict()
        self.upsample = nn.ModuleList()
        for i in reversed(range(len(channels))):
            c = channels[i]
            self.up.append(ResBlock(cin + c, c, temb))
            if i in self.attention_levels:
                self.attn[str(i)] = GarmentAttention(c, context_dim, heads, dim_head)
            self.upsample.append(
                nn.Identity()
                if i == 0
                else nn.Sequential(
                    nn.Upsample(scale_factor=2, mode="nearest"),
                    nn.Conv2d(c, channels[i - 1], 3, padding=1),
                )
            )
            cin = channels[i - 1] if i else c
        self.out = nn.Sequential(norm(channels[0]), nn.SiLU(), nn.Conv2d(channels[0], 3, 3, 1, 1))
        self.global_encoder = GarmentEncoder(channels, context_dim)
        self.local_encoder = LocalGarmentEncoder(channels, context_dim, self.attention_levels)
        self.pose = PoseProjection(context_dim, pose_grid)
        self.select = nn.ModuleDict(
            {str(i): SoftSelection(context_dim) for i in self.attention_levels}
        )

    def garment_context(self, cond: dict[str, torch.Tensor], front_only: bool = False):
        """Per attention level, ``(B, 1 + 2M, C)`` = [global token, front local, back local].

        ``cond`` holds ``garment_front/back``, their masks, ``skeleton``,
        ``skeleton_front/back`` (all in [-1, 1] / [0, 1] masks) and ``use_back`` ``(B,)`` bool.
        ``front_only`` is the ablation without view selection: both slots see the front.
        """
        front, back = cond["garment_front"], cond["garment_back"]
        fmask, bmask = cond["garment_front_mask"], cond["garment_back_mask"]
        sk_front, sk_back = cond["skeleton_front"], cond["skeleton_back"]
        if front_only:
            back, bmask, sk_back = front, fmask, sk_front
            use_back = torch.zeros_like(cond["use_back"])
        else:
            use_back = cond["use_back"]
        pick = use_back.view(-1, 1, 1, 1).bool()
        global_token = self.global_encoder(
            torch.where(pick, back, front), torch.where(pick, bmask, fmask)
        )
        pose_p, pose_f, pose_b = (self.pose(s) for s in (cond["skeleton"], sk_front, sk_back))
        local_f = self.local_encoder(front, fmask)
        local_b = self.local_encoder(back, bmask)
        context = {}
        for i in self.attention_levels:
            sel = self.select[str(i)]
            tokens = torch.cat(
                [sel(local_f[i], pose_p, pose_f), sel(local_b[i], pose_p, pose_b)], 1
            )
            context[i] = torch.cat([global_token, tokens], 1)
        return context

    def forward(self, x_t, t, agnostic, mask, prealigned, context) -> torch.Tensor:
        """ε (diffusion) or the image (regressor) ``(B, 3, H, W)``; ``context`` from
        :meth:`garment_context` (computed once per sample and reused at every step)."""
        parts = [agnostic, mask, prealigned]
        h = self.conv_in(torch.cat([x_t, *parts], 1) if self.diffusion else torch.cat(parts, 1))
        temb = self.temb(timestep_embedding(t, self.channels[0]))
        skips = []
        for block, down in zip(self.down, self.downsample, strict=True):
            h = block(h, temb)
            skips.append(h)
            h = down(h)
        h = self.mid(h, temb)
        levels = list(reversed(range(len(self.channels))))
        for level, block, up in zip(levels, self.up, self.upsample, strict=True):
            h = block(torch.cat([h, skips[level]], 1), temb)
            if str(level) in self.attn:
                h = self.attn[str(level)](h, context[level])
            h = up(h)
        return self.out(h)
