"""Pose networks.

- :class:`PSAPoseNet` — top-down heatmap network: a timm backbone, Polarized Self-Attention
  (Liu et al., 2021, arXiv:2107.00782; ``shared_blocks.PolarizedSelfAttention``), and
  SimpleBaseline's deconvolution head (Xiao et al., ECCV 2018): 3 × (4×4 transposed conv
  stride 2, BN, ReLU) then a 1×1 conv to K heatmaps at stride 4. PSA sits either after the
  first 3×3 conv of every residual block, as the paper adds it (``psa_placement="blocks"``,
  timm ResNets), or on the backbone output and the head output (``"head"``, any backbone).
- :class:`PoseLifter` — 2-D→3-D lifting of a window of T frames: one token per joint per
  frame; blocks of skeleton-aware spatial attention (scores biased by a learned per-head
  weight of the k-hop graph distance on the skeleton, joints further than ``max_hop``
  masked, in the spirit of HopFIR, arXiv:2302.14581) then per-joint temporal attention
  (decoupled space-time as DSTA); optionally ``shared_blocks.DeformableAttention3D`` over the
  (time, joint) token volume (Kim et al., ICCV 2023, arXiv:2212.05638). Predicts the centre
  frame's root-relative joints (VideoPose3D's receptive-field convention). These are
  reimplementations from the papers (no public code of HopFIR / 3-D deformable attention).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import nn

from tessera.datamodules.pose.skeleton import H36M_PARENTS, hop_distances, skeleton_edges
from tessera.shared_blocks import CrossAttention, DeformableAttention3D, PolarizedSelfAttention

PSAMode = Literal["parallel", "sequential", "none"]


class _InsertAfter(nn.Module):
    """``extra(conv(x))`` keeping ``conv``'s weights addressable (``.conv``)."""

    def __init__(self, conv: nn.Module, extra: nn.Module):
        super().__init__()
        self.conv, self.extra = conv, extra

    def forward(self, x):
        return self.extra(self.conv(x))


def _add_psa_to_blocks(backbone: nn.Module, mode: str) -> int:
    """PSA after the first 3×3 conv of each timm ResNet block; returns how many were added."""
    added = 0
    for module in backbone.modules():
        name = type(module).__name__
        conv = {"Bottleneck": "conv2", "BasicBlock": "conv1"}.get(name)
        if conv is None:
            continue
        layer = getattr(module, conv)
        setattr(module, conv, _InsertAfter(layer, PolarizedSelfAttention(layer.out_channels, mode)))
        added += 1
    return added


class PSAPoseNet(nn.Module):
    """Heatmap keypoint network (see the module docstring).

    Args:
        backbone: timm model name (``resnet50`` for the paper size).
        pretrained: load timm's ImageNet weights (downloads; False in tests).
        num_keypoints: K.
        psa_mode: ``parallel`` (PSA_p), ``sequential`` (PSA_s) or ``none`` (baseline).
        psa_placement: ``blocks`` (in every residual block) or ``head``.
        deconv_channels: widths of the transposed-conv layers (stride ×2 each).
        feature_index: which backbone stage feeds the head (-1 = last, stride 32).

    Shapes: image ``(B, 3, H, W)`` → heatmaps ``(B, K, H/4, W/4)`` with the defaults.
    """

    def __init__(
        self,
        backbone: str = "resnet50",
        pretrained: bool = False,
        num_keypoints: int = 17,
        psa_mode: PSAMode = "parallel",
        psa_placement: Literal["blocks", "head"] = "head",
        deconv_channels: tuple[int, ...] = (256, 256, 256),
        feature_index: int = -1,
    ):
        super().__init__()
        import timm

        if psa_mode not in ("parallel", "sequential", "none"):
            raise ValueError(f"psa_mode must be parallel, sequential or none, got {psa_mode!r}")
        self.backbone = timm.create_model(
            backbone, pretrained=pretrained, features_only=True, out_indices=(feature_index,)
        )
        channels = self.backbone.feature_info.channels()[-1]
        self.stride = self.backbone.feature_info.reduction()[-1] // 2 ** len(deconv_channels)
        use_psa = psa_mode != "none"
        blocks = use_psa and psa_placement == "blocks"
        if blocks and _add_psa_to_blocks(self.backbone, psa_mode) == 0:
            raise ValueError(f"{backbone}: psa_placement='blocks' needs a timm ResNet")
        head_psa = use_psa and psa_placement == "head"
        self.neck = PolarizedSelfAttention(channels, psa_mode) if head_psa else nn.Identity()
        layers: list[nn.Module] = []
        cin = channels
        for cout in deconv_channels:
            layers += [
                nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            ]
            cin = cout
        self.deconv = nn.Sequential(*layers)
        self.head_psa = PolarizedSelfAttention(cin, psa_mode) if head_psa else nn.Identity()
        self.final = nn.Conv2d(cin, num_keypoints, 1)
        for m in self.deconv.modules():
            if isinstance(m, nn.ConvTranspose2d):
                nn.init.normal_(m.weight, std=0.001)
        nn.init.normal_(self.final.weight, std=0.001)
        nn.init.zeros_(self.final.bias)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = self.backbone(image)[-1]
        x = self.deconv(self.neck(x))
        return self.final(self.head_psa(x))


class SkeletonAttention(nn.Module):
    """Multi-head attention over the J joints of a frame with a k-hop skeleton bias.

    ``score_h(i, j) = q_i·k_j / √d + b_h[hop(i, j)]`` for ``hop ≤ max_hop``, masked beyond
    (``max_hop=None`` keeps every pair, biased). ``b`` is learned per head and hop distance.

    Shapes: x ``(B, J, C)`` → ``(B, J, C)``.
    """

    def __init__(self, dim: int, heads: int, hops: np.ndarray, max_hop: int | None = 2):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        hops_t = torch.as_tensor(hops, dtype=torch.long)
        self.register_buffer("hops", hops_t, persistent=False)
        levels = int(hops_t.max()) + 1
        self.hop_bias = nn.Parameter(torch.zeros(heads, levels))
        allowed = hops_t <= (max_hop if max_hop is not None else levels)
        self.register_buffer("allowed", allowed, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, j, c = x.shape
        q, k, v = self.qkv(x).view(b, j, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        bias = self.hop_bias[:, self.hops]  # (H, J, J)
        bias = bias.masked_fill(~self.allowed, float("-inf"))
        # Explicit softmax: with J = 17 this is faster on CPU than SDPA's masked path.
        scores = (q @ k.transpose(-1, -2)) * self.scale + bias.to(q.dtype)
        out = scores.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(b, j, c))


class _MLP(nn.Sequential):
    def __init__(self, dim: int, ratio: float, dropout: float):
        hidden = int(dim * ratio)
        super().__init__(
            nn.Linear(dim, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, dim),
            nn.Dropout(dropout),
        )


class SpaceTimeBlock(nn.Module):
    """Skeleton attention over joints, then temporal attention per joint (pre-norm,
    residual, MLP after each), optionally 3-D deformable attention over (time, joint).

    Shapes: x ``(B, T, J, C)`` → same.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        hops: np.ndarray,
        max_hop: int | None,
        mlp_ratio: float = 2.0,
        dropout: float = 0.0,
        deformable: bool = False,
        points: int = 4,
    ):
        super().__init__()
        self.norm_s, self.spatial = nn.LayerNorm(dim), SkeletonAttention(dim, heads, hops, max_hop)
        self.norm_s2, self.mlp_s = nn.LayerNorm(dim), _MLP(dim, mlp_ratio, dropout)
        self.norm_t, self.temporal = nn.LayerNorm(dim), CrossAttention(dim, heads=heads)
        self.norm_t2, self.mlp_t = nn.LayerNorm(dim), _MLP(dim, mlp_ratio, dropout)
        self.deform = DeformableAttention3D(dim, heads, 1, points) if deformable else None
        self.norm_d = nn.LayerNorm(dim) if deformable else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, j, c = x.shape
        s = x.reshape(b * t, j, c)
        s = s + self.spatial(self.norm_s(s))
        s = s + self.mlp_s(self.norm_s2(s))
        x = s.view(b, t, j, c).transpose(1, 2).reshape(b * j, t, c)
        x = x + self.temporal(self.norm_t(x))
        x = x + self.mlp_t(self.norm_t2(x))
        x = x.view(b, j, t, c).transpose(1, 2)  # (B, T, J, C)
        if self.deform is not None:
            x = x + self._deformable(self.norm_d(x))
        return x

    def _deformable(self, x: torch.Tensor) -> torch.Tensor:
        """Every token queries the (T, J, 1) volume around its own (t, j) position."""
        b, t, j, c = x.shape
        tokens = x.reshape(b, t * j, c)
        tt, jj = torch.meshgrid(torch.arange(t), torch.arange(j), indexing="ij")
        ref = torch.stack(
            [torch.full_like(tt, 0).float() + 0.5, (jj.float() + 0.5) / j, (tt.float() + 0.5) / t],
            dim=-1,
        )  # (x, y, t)
        ref = ref.reshape(1, t * j, 3).expand(b, -1, -1).to(x)
        shapes = torch.tensor([[t, j, 1]], dtype=torch.long, device=x.device)
        start = torch.zeros(1, dtype=torch.long, device=x.device)
        return self.deform(tokens, ref, tokens, shapes, start).view(b, t, j, c)


class PoseLifter(nn.Module):
    """2-D→3-D lifter over a receptive field of ``frames`` (see the module docstring).

    Args:
        frames: receptive field T (odd).
        num_joints: J (17, H36M order).
        dim, depth, heads, mlp_ratio, dropout: transformer size.
        max_hop: skeleton attention reach in bones (None = all pairs, biased).
        deformable: add 3-D deformable attention in every block.
        points: deformable sampling points per head.

    Shapes: poses_2d ``(B, T, J, 2)`` normalised screen coords → ``(B, J, 3)`` metres,
    root-relative (joint 0 is exactly 0).
    """

    def __init__(
        self,
        frames: int = 27,
        num_joints: int = 17,
        dim: int = 64,
        depth: int = 4,
        heads: int = 4,
        mlp_ratio: float = 2.0,
        dropout: float = 0.0,
        max_hop: int | None = 2,
        deformable: bool = False,
        points: int = 4,
    ):
        super().__init__()
        if frames < 1 or frames % 2 == 0:
            raise ValueError(f"frames must be odd, got {frames}")
        if num_joints != len(H36M_PARENTS):
            raise ValueError(f"the skeleton bias is defined for 17 H36M joints, not {num_joints}")
        self.frames, self.num_joints = frames, num_joints
        hops = hop_distances(num_joints, skeleton_edges(H36M_PARENTS))
        self.embed = nn.Linear(2, dim)
        self.joint_pos = nn.Parameter(torch.zeros(1, 1, num_joints, dim))
        self.time_pos = nn.Parameter(torch.zeros(1, frames, 1, dim))
        nn.init.trunc_normal_(self.joint_pos, std=0.02)
        nn.init.trunc_normal_(self.time_pos, std=0.02)
        self.blocks = nn.ModuleList(
            SpaceTimeBlock(dim, heads, hops, max_hop, mlp_ratio, dropout, deformable, points)
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 3)

    def forward(self, poses_2d: torch.Tensor) -> torch.Tensor:
        b, t, j, _ = poses_2d.shape
        if t != self.frames or j != self.num_joints:
            raise ValueError(
                f"poses_2d must be (B, {self.frames}, {self.num_joints}, 2), got "
                f"{tuple(poses_2d.shape)}"
            )
        x = self.embed(poses_2d) + self.joint_pos + self.time_pos
        for block in self.blocks:
            x = block(x)
        out = self.head(self.norm(x[:, t // 2]))
        return out - out[:, :1]
