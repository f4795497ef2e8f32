"""Submanifold sparse depthwise 3-D convolution in pure PyTorch (no spconv, no custom op).

ScatterFormer's cross-window interaction (He et al., ECCV 2024, arXiv:2401.00912) runs
depthwise convolutions over the occupied voxels only; the official code needs spconv or its
CUDA ``dw_spconv`` op. Here a voxel hash (sorted flat keys + ``torch.searchsorted``) gives, for
every kernel offset, the index of each voxel's neighbour, and the convolution is a sum of
gathered rows. Outputs exist at the input voxels only (submanifold), and each equals the
dense zero-padded ``conv3d`` of the densified grid at that voxel.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from tessera.shared_blocks.registry import BLOCKS
from tessera.shared_blocks.voxel.partition import Triple, as_triple, check_voxels, flat_voxel_key


def neighbour_index(coords: torch.Tensor, grid_shape: Triple, kernel_size: Triple) -> torch.Tensor:
    """Neighbour table of a centred kernel over the occupied voxels.

    Args:
        coords: (N, 4) integer (batch, z, y, x), one row per occupied voxel (no duplicates).
        grid_shape: (Z, Y, X) grid size; neighbours outside it do not exist (zero padding).
        kernel_size: (kz, ky, kx), odd sizes.

    Returns:
        (K, N) int64 with K = kz*ky*kx in ``itertools.product`` order over (dz, dy, dx) (the
        flattened order of a ``(kz, ky, kx)`` conv weight); entry ``[k, i]`` is the index of the
        voxel at ``coords[i] + offset_k``, or -1 when that site is empty.
    """
    if any(k % 2 == 0 for k in kernel_size):
        raise ValueError(f"kernel_size must be odd on every axis, got {kernel_size}")
    c = coords.long()
    keys = flat_voxel_key(c, grid_shape)
    sorted_keys, order = torch.sort(keys)
    grid = torch.tensor(grid_shape, device=c.device)
    ranges = [range(-(k // 2), k // 2 + 1) for k in kernel_size]
    offsets = torch.tensor(list(itertools.product(*ranges)), device=c.device)  # (K, 3)
    table = torch.full((offsets.shape[0], c.shape[0]), -1, dtype=torch.long, device=c.device)
    if c.shape[0] == 0:
        return table
    for k, off in enumerate(offsets):
        spatial = c[:, 1:] + off
        inside = ((spatial >= 0) & (spatial < grid)).all(1)
        nkey = flat_voxel_key(torch.cat([c[:, :1], spatial], 1), grid_shape)
        pos = torch.searchsorted(sorted_keys, nkey).clamp(max=c.shape[0] - 1)
        found = inside & (sorted_keys[pos] == nkey)
        table[k] = torch.where(found, order[pos], -1)
    return table


@BLOCKS.register_module()
class SparseDepthwiseConv3d(nn.Module):
    """Submanifold depthwise conv over sparse voxels, weights laid out as ``nn.Conv3d``.

    Args:
        channels: C, input = output channels (one filter per channel).
        kernel_size: (kz, ky, kx) odd sizes, or one int for all axes.
        bias: learn a per-channel bias.

    Shapes:
        features: (N, C); coords: (N, 4) integer (batch, z, y, x); output: (N, C).
    """

    def __init__(self, channels: int, kernel_size: int | Triple = 3, bias: bool = True):
        super().__init__()
        self.channels = channels
        self.kernel_size = as_triple("kernel_size", kernel_size)
        self.weight = nn.Parameter(torch.empty(channels, 1, *self.kernel_size))
        self.bias = nn.Parameter(torch.zeros(channels)) if bias else None
        # Same default init as nn.Conv3d with groups=channels (fan_in = kernel volume).
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)

    def forward(
        self,
        features: torch.Tensor,
        coords: torch.Tensor,
        grid_shape: Triple,
        neighbours: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Args:
        features: (N, C) voxel features.
        coords: (N, 4) voxel coordinates.
        grid_shape: (Z, Y, X).
        neighbours: optional precomputed :func:`neighbour_index` table for this kernel size.
        """
        check_voxels(features, coords, self.channels)
        if neighbours is None:
            neighbours = neighbour_index(
                coords, as_triple("grid_shape", grid_shape), self.kernel_size
            )
        weight = self.weight.reshape(self.channels, -1).t()  # (K, C)
        # Missing neighbours point at an appended zero row. One row gather per offset keeps
        # the working set at (N, C) and is faster than one (K, N, C) gather.
        padded = torch.cat([features, features.new_zeros(1, self.channels)])
        table = torch.where(neighbours >= 0, neighbours, features.shape[0])  # (K, N)
        out = features.new_zeros(features.shape)
        for k in range(table.shape[0]):
            out = torch.addcmul(out, padded.index_select(0, table[k]), weight[k])
        if self.bias is not None:
            out = out + self.bias
        return out
