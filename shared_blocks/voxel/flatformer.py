"""FlatFormer: flattened window attention (Liu et al., CVPR 2023, arXiv:2301.08739).

Official code: ``mit-han-lab/flatformer`` (``mmdet3d/models/middle_encoders/flatformer.py``).
Voxels are sorted by a window-based snake (boustrophedon) key, along x or along y, on the
unshifted or the half-window-shifted grid: four orders per block. Each sorted sample is cut
into groups of exactly ``group_size`` voxels (the tail group overlaps its predecessor, see
:func:`~tessera.shared_blocks.voxel.partition.equal_size_groups`), attention runs inside each
group in one batched :func:`tessera.kernels.attention` call ``(G, H, group_size, D)``, and
results are un-sorted back to the input order. No padding mask is needed except for samples
smaller than one group.

Shapes: features (N, C); coords (N, 4) integer (batch, z, y, x); outputs (N, C) in the same
order. ``grid_shape`` is (Z, Y, X); ``window_shape`` is (wy, wx).
"""

from __future__ import annotations

import torch
from torch import nn

from tessera.kernels import attention
from tessera.shared_blocks.registry import BLOCKS
from tessera.shared_blocks.voxel.dsvt import get_activation
from tessera.shared_blocks.voxel.partition import (
    GroupPartition,
    Triple,
    as_triple,
    check_voxels,
    equal_size_groups,
    snake_key,
)

# (axis, shifted) of the four layers of a block, in the official order.
ORDERS = (("x", False), ("x", True), ("y", False), ("y", True))


def sinusoidal_position_embedding(
    coords: torch.Tensor, dim: int, temperature: float = 10000.0, dtype=torch.float32
) -> torch.Tensor:
    """FlatFormer's fixed 2-D sine/cosine embedding of absolute (x, y), zero-padded to ``dim``.

    Each axis uses ``L = (dim // 4) * 2`` features: ``sin(p / T^(2i/L)), cos(p / T^(2i/L))`` for
    i < L / 2, interleaved; x features come first.

    Returns:
        (N, dim) embedding.
    """
    length = (dim // 4) * 2
    i = torch.arange(length // 2, device=coords.device, dtype=torch.float32)
    inv = temperature ** (-2 * i / length)  # (L/2,)
    parts = []
    for axis in (3, 2):  # x then y
        angle = coords[:, axis].float()[:, None] * inv  # (N, L/2)
        parts.append(torch.stack([angle.sin(), angle.cos()], -1).flatten(1))
    pe = torch.cat(parts, 1)
    return nn.functional.pad(pe, (0, dim - pe.shape[1])).to(dtype)


@torch.no_grad()
def flat_window_groups(
    coords: torch.Tensor, grid_shape: Triple, window_shape: tuple[int, int], group_size: int
) -> list[GroupPartition]:
    """The four group partitions of a FlatFormer block (x, x_shift, y, y_shift)."""
    wy, wx = window_shape
    groups = []
    for axis, shifted in ORDERS:
        shift = (wy // 2, wx // 2) if shifted else (0, 0)
        key = snake_key(coords, grid_shape, window_shape, shift, axis)
        groups.append(equal_size_groups(key, coords[:, 0].long(), group_size))
    return groups


@BLOCKS.register_module()
class FlatWindowAttention(nn.Module):
    """Multi-head attention inside equal-size groups of a flattened voxel sequence.

    Q = K = x + pe, V = x (as the official ``GroupAttention``).

    Args:
        dim: C.
        heads: attention heads.

    Shapes:
        x, pe: (N, C); groups: a :class:`GroupPartition` over the N voxels; output (N, C).
    """

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim={dim} must be divisible by heads={heads}")
        self.dim = dim
        self.heads = heads
        self.qk = nn.Linear(dim, 2 * dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, pe: torch.Tensor, groups: GroupPartition) -> torch.Tensor:
        idx = groups.voxel_index  # (G, gs)
        g, gs = idx.shape
        h, d = self.heads, self.dim // self.heads
        qkv = torch.cat([self.qk(x + pe), self.v(x)], 1)  # (N, 3C)
        q, k, v = qkv[idx].view(g, gs, 3, h, d).permute(2, 0, 3, 1, 4)  # 3 x (G, H, gs, D)
        out = attention(q, k, v, key_padding_mask=groups.key_mask)  # (G, H, gs, D)
        home = groups.home_slot
        out = out[home // gs, :, home % gs].reshape(-1, self.dim)  # back to voxels (N, C)
        return self.proj(out)


@BLOCKS.register_module()
class FlatFormerBlock(nn.Module):
    """Four post-norm attention layers over the x, x-shifted, y and y-shifted orders.

    Each layer: ``x = LN1(x + FlatWindowAttention(x, pe)); x = LN2(x + FFN(x))`` with FFN
    ``Linear(C, ffn_ratio*C) - act - Linear``.

    Args:
        dim: C.
        heads: attention heads.
        group_size: voxels per group (144 in the Waymo config).
        window_shape: (wy, wx) window of the snake order (13x13 in the Waymo config).
        ffn_ratio: FFN expansion (2 in FlatFormer).
        activation: ``"gelu"`` or ``"relu"``.

    Shapes:
        features: (N, C); coords: (N, 4); output: (N, C), same voxels, same order.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        group_size: int,
        window_shape: tuple[int, int],
        ffn_ratio: int = 2,
        activation: str = "gelu",
    ):
        super().__init__()
        if len(window_shape) != 2:
            raise ValueError(f"window_shape must be (wy, wx), got {window_shape!r}")
        self.dim = dim
        self.group_size = group_size
        self.window_shape = (int(window_shape[0]), int(window_shape[1]))
        self.attn = nn.ModuleList(FlatWindowAttention(dim, heads) for _ in ORDERS)
        self.fc1 = nn.ModuleList(nn.Linear(dim, ffn_ratio * dim) for _ in ORDERS)
        self.fc2 = nn.ModuleList(nn.Linear(ffn_ratio * dim, dim) for _ in ORDERS)
        self.norm1 = nn.ModuleList(nn.LayerNorm(dim) for _ in ORDERS)
        self.norm2 = nn.ModuleList(nn.LayerNorm(dim) for _ in ORDERS)
        self.act = get_activation(activation)

    def partition(self, coords: torch.Tensor, grid_shape: Triple) -> list[GroupPartition]:
        return flat_window_groups(coords, grid_shape, self.window_shape, self.group_size)

    def forward(
        self,
        features: torch.Tensor,
        coords: torch.Tensor,
        grid_shape: Triple,
        pe: torch.Tensor | None = None,
        groups: list[GroupPartition] | None = None,
    ) -> torch.Tensor:
        """Args:
        features: (N, C).
        coords: (N, 4) integer (batch, z, y, x).
        grid_shape: (Z, Y, X).
        pe: (N, C) position embedding; default :func:`sinusoidal_position_embedding`.
        groups: precomputed :meth:`partition`.
        """
        check_voxels(features, coords, self.dim)
        if features.shape[0] == 0:
            return features.clone()
        if pe is None:
            pe = sinusoidal_position_embedding(coords, self.dim, dtype=features.dtype)
        if groups is None:
            groups = self.partition(coords, as_triple("grid_shape", grid_shape))
        x = features
        for i, part in enumerate(groups):
            x = self.norm1[i](x + self.attn[i](x, pe, part))
            x = self.norm2[i](x + self.fc2[i](self.act(self.fc1[i](x))))
        return x


@BLOCKS.register_module()
class FlatFormer(nn.Module):
    """FlatFormer backbone: a stack of :class:`FlatFormerBlock` sharing orders and embedding.

    Args:
        dim, heads, group_size, window_shape, ffn_ratio, activation: as :class:`FlatFormerBlock`.
        num_blocks: blocks (2 in the Waymo config).

    Shapes:
        features: (N, C); coords: (N, 4); output: (N, C), same voxels, same order.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        group_size: int,
        window_shape: tuple[int, int],
        num_blocks: int,
        ffn_ratio: int = 2,
        activation: str = "gelu",
    ):
        super().__init__()
        self.dim = dim
        self.blocks = nn.ModuleList(
            FlatFormerBlock(dim, heads, group_size, window_shape, ffn_ratio, activation)
            for _ in range(num_blocks)
        )
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(
        self, features: torch.Tensor, coords: torch.Tensor, grid_shape: Triple
    ) -> torch.Tensor:
        check_voxels(features, coords, self.dim)
        if features.shape[0] == 0:
            return features.clone()
        grid_shape = as_triple("grid_shape", grid_shape)
        pe = sinusoidal_position_embedding(coords, self.dim, dtype=features.dtype)
        groups = self.blocks[0].partition(coords, grid_shape) if self.blocks else None
        x = features
        for block in self.blocks:
            x = block(x, coords, grid_shape, pe, groups)
        return x


@BLOCKS.register_module()
def flatformer_waymo(**overrides) -> FlatFormer:
    """FlatFormer Waymo D1 config: dim 128, 8 heads, 2 blocks, window 13x13, group 144."""
    cfg = dict(dim=128, heads=8, group_size=144, window_shape=(13, 13), num_blocks=2)
    return FlatFormer(**{**cfg, **overrides})


@BLOCKS.register_module()
def flatformer_tiny(**overrides) -> FlatFormer:
    """A CPU-sized FlatFormer: dim 32, 4 heads, 1 block, window 6x6, group 16."""
    cfg = dict(dim=32, heads=4, group_size=16, window_shape=(6, 6), num_blocks=1)
    return FlatFormer(**{**cfg, **overrides})
