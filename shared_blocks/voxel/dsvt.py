"""DSVT: Dynamic Sparse Voxel Transformer with rotated sets (Wang et al., CVPR 2023).

arXiv:2301.06051; official code ``Haiyang-W/DSVT`` (``pcdet/models/backbones_3d/dsvt.py``,
``dsvt_input_layer.py``), also in OpenPCDet and mmdet3d ``projects/DSVT``.

Voxels are split into windows; inside each window they are sorted by y-then-x (and, for the
second layer, x-then-y: the rotated sets) and cut into equal-size sets with the dynamic set
partition of :func:`~tessera.shared_blocks.voxel.partition.dynamic_set_partition`. All sets of
all windows are attended in one batched :func:`tessera.kernels.attention` call
``(num_sets, H, tau, D)`` with repeated slots masked as keys. Blocks alternate two window
configurations (hybrid window shift: e.g. 12x12 unshifted, then 24x24 shifted by (6, 6)).

Shapes: features (N, C); coords (N, 4) integer (batch, z, y, x); every block returns (N, C)
for the same voxels in the same order. Spatial triples are (z, y, x) like ``coords``.

Differences from the official code, all deliberate:
    * The learned position embedding of both layers of a block is computed from the
      window-relative coordinates of that block's own window configuration (the official code
      pairs layer i with shift i, flagged there as "TODO: bug to be fixed, mismatch of
      pos_embed").
    * Scatter-back reads each voxel from its first (unmasked) set slot, a permutation, instead
      of an indexed assignment whose winner among duplicates is unspecified on CUDA; the
      duplicates hold identical values, so the result is the same and deterministic.
    * :class:`DSVTPooling` attends only to the occupied voxels of a pooling cell; the official
      block fills empty cells with zeros and attends to them too (its key mask is all-keep).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tessera.kernels import attention
from tessera.shared_blocks.registry import BLOCKS
from tessera.shared_blocks.voxel.partition import (
    SetPartition,
    Triple,
    as_triple,
    check_voxels,
    dynamic_set_partition,
    flat_voxel_key,
    in_window_key,
    window_partition,
    window_volume,
)

_ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}


def get_activation(name: str):
    if name not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {name!r}")
    return _ACTIVATIONS[name]


@dataclass(frozen=True)
class RotatedSets:
    """Set partitions of one window configuration: Y-sorted sets, X-sorted sets, positions.

    Attributes:
        sets_y: sets of voxels sorted by (y, x, z) inside each window (first layer).
        sets_x: sets of voxels sorted by (x, y, z) inside each window (second layer).
        coords_in_window: (N, 3) window-relative (z, y, x), input of the position embedding.
    """

    sets_y: SetPartition
    sets_x: SetPartition
    coords_in_window: torch.Tensor


@torch.no_grad()
def rotated_sets(
    coords: torch.Tensor, grid_shape: Triple, window_shape: Triple, shift: Triple, set_size: int
) -> RotatedSets:
    """Window partition then the two DSVT set partitions (sort axes y and x)."""
    window_key, in_win = window_partition(coords, grid_shape, window_shape, shift)
    volume = window_volume(window_shape)
    sets = [
        dynamic_set_partition(window_key, in_window_key(in_win, window_shape, m), volume, set_size)
        for m in ("y", "x")
    ]
    return RotatedSets(sets[0], sets[1], in_win)


class PositionEmbeddingLearned(nn.Module):
    """DSVT's learned position embedding: Linear(ndim -> C) - BatchNorm - ReLU - Linear.

    Input: window-relative coordinates centred on the window, (x, y) for flat windows
    (wz == 1) and (x, y, z) otherwise, optionally scaled to [-pi, pi] (``normalize``).
    """

    def __init__(self, window_shape: Triple, dim: int, normalize: bool = False):
        super().__init__()
        self.window_shape = window_shape
        self.normalize = normalize
        ndim = 2 if window_shape[0] == 1 else 3
        self.mlp = nn.Sequential(
            nn.Linear(ndim, dim), nn.BatchNorm1d(dim), nn.ReLU(), nn.Linear(dim, dim)
        )

    def forward(self, coords_in_window: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        win = torch.tensor(self.window_shape, device=coords_in_window.device, dtype=dtype)
        rel = coords_in_window.to(dtype) - win / 2  # (N, 3) z, y, x
        if self.normalize:
            rel = rel / win * 2 * torch.pi
        loc = rel.flip(1)  # x, y, z
        return self.mlp(loc[:, :2] if self.window_shape[0] == 1 else loc)


class SetAttentionLayer(nn.Module):
    """One DSVT encoder layer: set attention + FFN, post-norm (``DSVT_EncoderLayer``).

    ``y = LN1(x + SetAttn(x, pos)); y = LN2(y + FFN(y)); out = LN(y + x)`` where SetAttn
    attends inside every set with Q = K = x + pos and V = x.

    Args:
        dim: C.
        heads: attention heads.
        ffn_dim: hidden size of the FFN.
        activation: ``"relu"`` or ``"gelu"``.
    """

    def __init__(self, dim: int, heads: int, ffn_dim: int, activation: str = "gelu"):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim={dim} must be divisible by heads={heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.fc1 = nn.Linear(dim, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm_out = nn.LayerNorm(dim)
        self.act = get_activation(activation)

    def set_attention(self, x: torch.Tensor, pos: torch.Tensor, sets: SetPartition) -> torch.Tensor:
        """(N, C) attention output of each voxel inside its set (before the output residual)."""
        n, c = x.shape
        h, d = self.heads, c // self.heads
        w_qk, w_v = self.qkv.weight.split([2 * c, c])
        b_qk, b_v = self.qkv.bias.split([2 * c, c])
        # Project per voxel, then gather once: cheaper than projecting the (S, tau) set slots.
        qkv = torch.cat([F.linear(x + pos, w_qk, b_qk), F.linear(x, w_v, b_v)], 1)  # (N, 3C)
        idx = sets.voxel_index  # (S, tau)
        s, tau = idx.shape
        q, k, v = qkv[idx].view(s, tau, 3, h, d).permute(2, 0, 3, 1, 4)  # 3 x (S, H, tau, D)
        out = attention(q, k, v, key_padding_mask=sets.key_mask)  # (S, H, tau, D)
        home = sets.home_slot
        out = out[home // tau, :, home % tau].reshape(n, c)  # back to voxels (N, C)
        return self.proj(out)

    def forward(self, x: torch.Tensor, pos: torch.Tensor, sets: SetPartition) -> torch.Tensor:
        y = self.norm1(x + self.set_attention(x, pos, sets))
        y = self.norm2(y + self.fc2(self.act(self.fc1(y))))
        return self.norm_out(y + x)


@BLOCKS.register_module()
class DSVTBlock(nn.Module):
    """DSVT block: Y-sorted then X-sorted set attention in one window configuration.

    Both layers use the block's window configuration; a backbone alternates blocks with two
    configurations (hybrid window shift). The block ends with DSVT's per-block residual + LN.

    Args:
        dim: C, channels.
        heads: attention heads (8 in DSVT).
        ffn_dim: FFN hidden size (2 * dim in DSVT).
        set_size: tau, voxels per set (36 for DSVT-Pillar).
        window_shape: (wz, wy, wx) window in voxels.
        shift: (sz, sy, sx) window shift.
        activation: ``"gelu"`` (DSVT configs) or ``"relu"``.
        normalize_pos: scale position-embedding inputs to [-pi, pi].

    Shapes:
        features: (N, C); coords: (N, 4) integer (batch, z, y, x); output: (N, C), same order.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        ffn_dim: int,
        set_size: int,
        window_shape: Triple,
        shift: Triple = (0, 0, 0),
        activation: str = "gelu",
        normalize_pos: bool = False,
    ):
        super().__init__()
        self.dim = dim
        self.set_size = set_size
        self.window_shape = as_triple("window_shape", window_shape)
        self.shift = as_triple("shift", shift)
        self.layers = nn.ModuleList(
            SetAttentionLayer(dim, heads, ffn_dim, activation) for _ in range(2)
        )
        self.pos_embed = nn.ModuleList(
            PositionEmbeddingLearned(self.window_shape, dim, normalize_pos) for _ in range(2)
        )
        self.norm = nn.LayerNorm(dim)

    @property
    def config(self) -> tuple[Triple, Triple, int]:
        """(window_shape, shift, set_size): blocks with equal configs share a partition."""
        return self.window_shape, self.shift, self.set_size

    def partition(self, coords: torch.Tensor, grid_shape: Triple) -> RotatedSets:
        return rotated_sets(coords, grid_shape, self.window_shape, self.shift, self.set_size)

    def forward(
        self,
        features: torch.Tensor,
        coords: torch.Tensor,
        grid_shape: Triple,
        sets: RotatedSets | None = None,
    ) -> torch.Tensor:
        """Args:
        features: (N, C).
        coords: (N, 4) integer (batch, z, y, x).
        grid_shape: (Z, Y, X).
        sets: precomputed :meth:`partition` (a backbone computes it once per configuration).
        """
        check_voxels(features, coords, self.dim)
        if features.shape[0] == 0:
            return features.clone()
        if sets is None:
            sets = self.partition(coords, as_triple("grid_shape", grid_shape))
        x = features
        for layer, pos_embed, part in zip(
            self.layers, self.pos_embed, (sets.sets_y, sets.sets_x), strict=True
        ):
            x = layer(x, pos_embed(sets.coords_in_window, x.dtype), part)
        return self.norm(x + features)


@BLOCKS.register_module()
class DSVTBackbone(nn.Module):
    """Single-stage DSVT (DSVT-Pillar): blocks alternating two window configurations.

    Block b uses configuration ``b % 2``: config 0 = ``window_shape`` unshifted, config 1 =
    ``window_shape * hybrid_factor`` shifted by ``shift`` (DSVT: 12x12 -> 24x24 shifted (6, 6)).
    Set partitions are computed once per configuration and shared by the blocks.

    Args:
        dim: C.
        heads: attention heads.
        ffn_dim: FFN hidden size.
        set_size: tau.
        num_blocks: DSVT blocks (each = 2 set-attention layers).
        window_shape: (wz, wy, wx) base window.
        hybrid_factor: (fz, fy, fx) window multiplier of the shifted configuration.
        shift: (sz, sy, sx) shift of the second configuration.
        activation: FFN activation.
        normalize_pos: scale position-embedding inputs to [-pi, pi].

    Shapes:
        features: (N, C); coords: (N, 4); output: (N, C), same voxels, same order.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        ffn_dim: int,
        set_size: int,
        num_blocks: int,
        window_shape: Triple,
        hybrid_factor: Triple = (1, 2, 2),
        shift: Triple = (0, 6, 6),
        activation: str = "gelu",
        normalize_pos: bool = False,
    ):
        super().__init__()
        self.dim = dim
        base = as_triple("window_shape", window_shape)
        factor = as_triple("hybrid_factor", hybrid_factor)
        configs = [
            (base, (0, 0, 0)),
            (tuple(w * f for w, f in zip(base, factor, strict=True)), as_triple("shift", shift)),
        ]
        self.blocks = nn.ModuleList(
            DSVTBlock(dim, heads, ffn_dim, set_size, *configs[b % 2], activation, normalize_pos)
            for b in range(num_blocks)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform on every matrix, as the official ``_reset_parameters``."""
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(
        self, features: torch.Tensor, coords: torch.Tensor, grid_shape: Triple
    ) -> torch.Tensor:
        check_voxels(features, coords, self.dim)
        grid_shape = as_triple("grid_shape", grid_shape)
        cache: dict[tuple, RotatedSets] = {}
        x = features
        for block in self.blocks:
            if features.shape[0] and block.config not in cache:
                cache[block.config] = block.partition(coords, grid_shape)
            x = block(x, coords, grid_shape, cache.get(block.config))
        return x


def cell_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, counts: torch.Tensor):
    """Multi-head attention of one query per cell over that cell's keys.

    The keys of cell m are the ``counts[m]`` consecutive rows after those of cells < m. One
    query against at most a stride volume of keys is a dot product per key, a softmax per
    cell and a weighted sum: segment reductions do it directly, where attention tiles would
    spend a whole MMA row block on one query. Same result as
    ``varlen_attention(q, k, v, cu_q=arange(M + 1), cu_k=cumsum(counts), 1, max(counts))``;
    half inputs are computed in fp32 (the output has the input dtype); deterministic.

    Args:
        q: (M, H, D) one query per cell.
        k: (N, H, D) keys sorted by cell.
        v: (N, H, D) values sorted by cell.
        counts: (M,) int, keys per cell, all >= 1, summing to N.

    Returns:
        (M, H, D).
    """
    cell = torch.repeat_interleave(torch.arange(counts.numel(), device=q.device), counts)
    dtype = torch.promote_types(q.dtype, torch.float32)  # fp16/bf16 computed in fp32
    qf, kf, vf = q.to(dtype), k.to(dtype), v.to(dtype)
    scores = (qf[cell] * kf).sum(-1) * q.shape[-1] ** -0.5  # (N, H)
    # The softmax does not depend on the shift, so the cell maxima need no gradient.
    cell_max = torch.segment_reduce(scores.detach(), "max", lengths=counts, axis=0)
    p = torch.exp(scores - cell_max[cell])
    denom = torch.segment_reduce(p, "sum", lengths=counts, axis=0)  # (M, H), >= 1
    out = torch.segment_reduce(p[..., None] * vf, "sum", lengths=counts, axis=0)
    return (out / denom[..., None]).to(v.dtype)


@BLOCKS.register_module()
class DSVTPooling(nn.Module):
    """DSVT attention-style 3-D pooling (``Stage_ReductionAtt_Block``).

    Voxels are grouped into pooling cells of ``stride`` voxels; the query of a cell is the
    channel-wise max over its voxels, the keys are the voxels plus a learned per-position
    embedding, the values the voxels; one multi-head attention per cell (ragged cells, one
    :func:`cell_attention`, segment reductions over the ragged cells, no padding to the cell
    volume), then ``LN(attn + query)``.

    Args:
        dim: C.
        stride: (sz, sy, sx) pooling cell size, e.g. (4, 1, 1) for DSVT-V's z pooling.
        heads: attention heads (8 in DSVT).

    Shapes:
        features: (N, C); coords: (N, 4).
        returns ``(pooled (M, C), pooled_coords (M, 4), pooled_grid_shape, cell_of_voxel (N,))``;
        cells are ordered by (batch, z, y, x) of the pooled grid.
    """

    def __init__(self, dim: int, stride: Triple, heads: int = 8):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim={dim} must be divisible by heads={heads}")
        self.dim = dim
        self.heads = heads
        self.stride = as_triple("stride", stride)
        self.pos_embedding = nn.Parameter(torch.randn(window_volume(self.stride), dim) * 0.01)
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(
        self, features: torch.Tensor, coords: torch.Tensor, grid_shape: Triple
    ) -> tuple[torch.Tensor, torch.Tensor, Triple, torch.Tensor]:
        check_voxels(features, coords, self.dim)
        grid_shape = as_triple("grid_shape", grid_shape)
        stride = torch.tensor(self.stride, device=coords.device)
        pooled_grid = tuple(-(-g // s) for g, s in zip(grid_shape, self.stride, strict=True))
        c = coords.long()
        cell_coords = torch.cat([c[:, :1], c[:, 1:] // stride], 1)
        rel = c[:, 1:] % stride
        in_cell = (rel[:, 0] * self.stride[1] + rel[:, 1]) * self.stride[2] + rel[:, 2]
        cell_key, cell, counts = torch.unique(
            flat_voxel_key(cell_coords, pooled_grid), return_inverse=True, return_counts=True
        )
        m, n, c_dim = counts.numel(), features.shape[0], self.dim
        if n == 0:
            return features.new_zeros(0, c_dim), coords.new_zeros(0, 4), pooled_grid, cell
        pooled_coords = torch.zeros(m, 4, dtype=coords.dtype, device=coords.device)
        pooled_coords[cell] = cell_coords.to(coords.dtype)
        query = features.new_full((m, c_dim), float("-inf"))
        query = query.scatter_reduce(0, cell[:, None].expand(-1, c_dim), features, "amax")
        order = torch.argsort(cell * window_volume(self.stride) + in_cell)  # members by cell
        h, d = self.heads, c_dim // self.heads
        q = self.q_proj(query).view(m, h, d)
        k = self.k_proj((features + self.pos_embedding[in_cell])[order]).view(n, h, d)
        v = self.v_proj(features[order]).view(n, h, d)
        out = cell_attention(q, k, v, counts)  # (M, H, D)
        out = self.proj(out.reshape(m, c_dim))
        return self.norm(out + query), pooled_coords, pooled_grid, cell


@BLOCKS.register_module()
def dsvt_pillar(**overrides) -> DSVTBackbone:
    """DSVT-Pillar (``dsvt_plain_1f_onestage.yaml``): set 36, dim 192, 8 heads, FFN 384,
    4 blocks, window 12x12 / 24x24 shifted (6, 6), GELU; grid (1, 468, 468) of 0.32 m pillars."""
    cfg = dict(
        dim=192, heads=8, ffn_dim=384, set_size=36, num_blocks=4, window_shape=(1, 12, 12),
        hybrid_factor=(1, 2, 2), shift=(0, 6, 6), activation="gelu",
    )  # fmt: skip
    return DSVTBackbone(**{**cfg, **overrides})


@BLOCKS.register_module()
def dsvt_tiny(**overrides) -> DSVTBackbone:
    """A CPU-sized DSVT: dim 32, 4 heads, set 16, 2 blocks, window 6x6 / 12x12 shifted (3, 3)."""
    cfg = dict(
        dim=32, heads=4, ffn_dim=64, set_size=16, num_blocks=2, window_shape=(1, 6, 6),
        hybrid_factor=(1, 2, 2), shift=(0, 3, 3), activation="gelu",
    )  # fmt: skip
    return DSVTBackbone(**{**cfg, **overrides})
