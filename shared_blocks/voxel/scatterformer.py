"""ScatterFormer: scattered linear attention over window-sorted voxels (He et al., ECCV 2024).

arXiv:2401.00912; official code ``skyhehe123/ScatterFormer``
(``pcdet/models/backbones_3d/scatterformer.py``). Voxels are sorted by (batch, window) and
linear attention runs inside every window over the ragged sequence, through
:func:`tessera.kernels.scatter_linear_attention` (no padding, no set splitting). Windows then
exchange information through the cross-window interaction: the channels are split into four
groups, three of which go through sparse depthwise convolutions (3x3x3, 1x1xk along x, 1xkx1
along y, k = window + 1), followed by an FFN.

Shapes: features (N, C); coords (N, 4) integer (batch, z, y, x); outputs (N, C) in the same
order. Spatial triples are (z, y, x).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tessera.kernels import scatter_linear_attention
from tessera.shared_blocks.registry import BLOCKS
from tessera.shared_blocks.voxel.dsvt import get_activation
from tessera.shared_blocks.voxel.partition import (
    Triple,
    as_triple,
    check_voxels,
    window_offsets,
    window_volume,
)
from tessera.shared_blocks.voxel.sparse_conv import SparseDepthwiseConv3d, neighbour_index


@dataclass(frozen=True)
class ScatterLayout:
    """Window-sorted layout shared by the blocks of a backbone.

    Attributes:
        order: (N,) voxel indices sorted by (batch, window).
        rank: (N,) position of each voxel in ``order`` (the inverse permutation).
        offsets: (W + 1,) window boundaries in ``order``.
        coords_in_window: (N, 3) window-relative (z, y, x), input order.
        neighbours: kernel size -> :func:`neighbour_index` table.
    """

    order: torch.Tensor
    rank: torch.Tensor
    offsets: torch.Tensor
    coords_in_window: torch.Tensor
    neighbours: dict[Triple, torch.Tensor]


@torch.no_grad()
def scatter_layout(
    coords: torch.Tensor, grid_shape: Triple, window_shape: Triple, kernel_sizes: list[Triple]
) -> ScatterLayout:
    order, offsets, in_win = window_offsets(coords, grid_shape, window_shape)
    tables = {k: neighbour_index(coords, grid_shape, k) for k in kernel_sizes}
    return ScatterLayout(order, torch.argsort(order), offsets, in_win, tables)


@BLOCKS.register_module()
class ScatteredLinearAttention(nn.Module):
    """Multi-head linear attention inside each window of a window-sorted sequence (SLA).

    ``q = phi(W_q (x + pe)), k = phi(W_k (x + pe)), v = W_v x``; per window and head
    ``y = q KV_w / (q . s_w + eps)`` with ``KV_w = sum k^T v`` and ``s_w = sum k``; then a
    linear projection. phi = ReLU as in the paper.

    Args:
        dim: C.
        heads: heads (4 in ScatterFormer).
        feature_map: ``"relu"`` or ``"elu1"``.

    Shapes:
        x, pe: (N, C) rows sorted by window; offsets: (W + 1,) window boundaries; output (N, C).
    """

    def __init__(self, dim: int, heads: int, feature_map: str = "relu"):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim={dim} must be divisible by heads={heads}")
        self.dim = dim
        self.heads = heads
        self.feature_map = feature_map
        self.qk = nn.Linear(dim, 2 * dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(
        self, x: torch.Tensor, offsets: torch.Tensor, pe: torch.Tensor | None = None
    ) -> torch.Tensor:
        n = x.shape[0]
        h, d = self.heads, self.dim // self.heads
        q, k = self.qk(x if pe is None else x + pe).view(n, 2, h, d).unbind(1)  # (N, H, D)
        v = self.v(x).view(n, h, d)
        out = scatter_linear_attention(q, k, v, offsets, feature_map=self.feature_map)
        return self.proj(out.reshape(n, self.dim))


@BLOCKS.register_module()
class CrossWindowInteraction(nn.Module):
    """ScatterFormer cross-window interaction (``CWI_FFN_Layer``).

    Channels split as ``(C - 3g, g, g, g)`` with ``g = C // 4``: identity, depthwise 3x3x3,
    depthwise 1x1xk (along x), depthwise 1xkx1 (along y); concatenated, then
    ``FFN(LN(.))``. Returns the FFN output (the caller adds the residual).

    Args:
        dim: C.
        ffn_dim: FFN hidden size.
        kernel_size: k of the long kernels (window + 1 = 13 in ScatterFormer).
        activation: FFN activation.

    Shapes:
        features: (N, C); coords: (N, 4); output: (N, C).
    """

    def __init__(self, dim: int, ffn_dim: int, kernel_size: int = 13, activation: str = "gelu"):
        super().__init__()
        self.dim = dim
        g = dim // 4
        if g < 1:
            raise ValueError(f"dim must be >= 4 to split into channel groups, got {dim}")
        self.split = (dim - 3 * g, g, g, g)
        self.kernel_sizes: list[Triple] = [(3, 3, 3), (1, 1, kernel_size), (1, kernel_size, 1)]
        self.convs = nn.ModuleList(SparseDepthwiseConv3d(g, k) for k in self.kernel_sizes)
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, dim)
        self.act = get_activation(activation)

    def forward(
        self,
        features: torch.Tensor,
        coords: torch.Tensor,
        grid_shape: Triple,
        neighbours: dict[Triple, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        check_voxels(features, coords, self.dim)
        neighbours = neighbours or {}
        parts = list(features.split(self.split, dim=1))
        for i, (conv, k) in enumerate(zip(self.convs, self.kernel_sizes, strict=True)):
            parts[i + 1] = conv(parts[i + 1], coords, grid_shape, neighbours.get(k))
        return self.fc2(self.act(self.fc1(self.norm(torch.cat(parts, 1)))))


@BLOCKS.register_module()
class ScatterFormerBlock(nn.Module):
    """SLA -> FFN -> cross-window interaction, each with residual + LN (post-norm).

    A learned embedding of the window-relative position is added to the SLA's query/key input;
    the block ends with ScatterFormer's per-block residual + LN.

    Args:
        dim: C.
        heads: SLA heads.
        ffn_dim: FFN hidden size (also used inside the CWI).
        window_shape: (wz, wy, wx) window; the CWI long kernels span ``wx + 1`` / ``wy + 1``.
        activation: FFN activation.
        feature_map: SLA feature map.

    Shapes:
        features: (N, C); coords: (N, 4); output: (N, C), same voxels, same order.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        ffn_dim: int,
        window_shape: Triple,
        activation: str = "gelu",
        feature_map: str = "relu",
    ):
        super().__init__()
        self.dim = dim
        self.window_shape = as_triple("window_shape", window_shape)
        self.pe = nn.Embedding(window_volume(self.window_shape), dim)
        self.attn = ScatteredLinearAttention(dim, heads, feature_map)
        self.fc1 = nn.Linear(dim, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, dim)
        kernel = max(self.window_shape[1], self.window_shape[2]) + 1
        kernel += 1 - kernel % 2  # odd, centred
        self.cwi = CrossWindowInteraction(dim, ffn_dim, kernel, activation)
        self.norm0 = nn.LayerNorm(dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm_out = nn.LayerNorm(dim)
        self.act = get_activation(activation)

    def layout(self, coords: torch.Tensor, grid_shape: Triple) -> ScatterLayout:
        return scatter_layout(coords, grid_shape, self.window_shape, self.cwi.kernel_sizes)

    def forward(
        self,
        features: torch.Tensor,
        coords: torch.Tensor,
        grid_shape: Triple,
        layout: ScatterLayout | None = None,
    ) -> torch.Tensor:
        check_voxels(features, coords, self.dim)
        if features.shape[0] == 0:
            return features.clone()
        grid_shape = as_triple("grid_shape", grid_shape)
        if layout is None:
            layout = self.layout(coords, grid_shape)
        wz, wy, wx = self.window_shape
        z, y, x_ = layout.coords_in_window.unbind(1)
        pe = self.pe((z * wy + y) * wx + x_)  # (N, C)
        order = layout.order
        attn = self.attn(features[order], layout.offsets, pe[order])[layout.rank]  # un-sorted
        x = self.norm0(features + attn)
        x = self.norm1(x + self.fc2(self.act(self.fc1(x))))
        x = self.norm2(x + self.cwi(x, coords, grid_shape, layout.neighbours))
        return self.norm_out(x + features)


@BLOCKS.register_module()
class ScatterFormer(nn.Module):
    """ScatterFormer backbone: a stack of :class:`ScatterFormerBlock` sharing one layout.

    Args:
        dim, heads, ffn_dim, window_shape, activation, feature_map: as the block.
        num_blocks: depth.

    Shapes:
        features: (N, C); coords: (N, 4); output: (N, C), same voxels, same order.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        ffn_dim: int,
        window_shape: Triple,
        num_blocks: int,
        activation: str = "gelu",
        feature_map: str = "relu",
    ):
        super().__init__()
        self.dim = dim
        self.blocks = nn.ModuleList(
            ScatterFormerBlock(dim, heads, ffn_dim, window_shape, activation, feature_map)
            for _ in range(num_blocks)
        )
        for name, p in self.named_parameters():
            if p.dim() > 1 and "convs" not in name:
                nn.init.xavier_uniform_(p)

    def forward(
        self, features: torch.Tensor, coords: torch.Tensor, grid_shape: Triple
    ) -> torch.Tensor:
        check_voxels(features, coords, self.dim)
        if features.shape[0] == 0 or not self.blocks:
            return features.clone()
        grid_shape = as_triple("grid_shape", grid_shape)
        layout = self.blocks[0].layout(coords, grid_shape)
        x = features
        for block in self.blocks:
            x = block(x, coords, grid_shape, layout)
        return x


@BLOCKS.register_module()
def scatterformer_waymo(**overrides) -> ScatterFormer:
    """ScatterFormer-like Waymo width: dim 128, 4 heads, FFN 256, window 12x12, kernels 13."""
    cfg = dict(dim=128, heads=4, ffn_dim=256, window_shape=(1, 12, 12), num_blocks=4)
    return ScatterFormer(**{**cfg, **overrides})


@BLOCKS.register_module()
def scatterformer_tiny(**overrides) -> ScatterFormer:
    """A CPU-sized ScatterFormer: dim 32, 4 heads, window 6x6, 2 blocks."""
    cfg = dict(dim=32, heads=4, ffn_dim=64, window_shape=(1, 6, 6), num_blocks=2)
    return ScatterFormer(**{**cfg, **overrides})
