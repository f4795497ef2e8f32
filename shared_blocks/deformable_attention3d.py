"""3-D deformable attention over (T, H, W) feature volumes.

Multi-scale deformable attention (Zhu et al., Deformable DETR, 2021, arXiv:2010.04159)
generalised to video volumes, as used for spatio-temporal token search in 3-D deformable
attention for action recognition (Kim, Ahn & Ko, ICCV 2023, arXiv:2212.05638; no public code,
this is a reimplementation). Each query predicts, per head h, level l and point p, an offset
Δ ∈ R³ (in voxels of that level) around its reference point r = (x, y, t) ∈ [0, 1]³ and a
weight A (softmax over the L·P samples of a head):

    out_h(q) = Σ_{l,p} A_{hlp}(q) · V_l^h(r + Δ_{hlp}(q) / (W_l, H_l, T_l))

where V(·) is trilinear sampling (``grid_sample`` convention, ``align_corners=False``, zeros
outside) done by ``kernels.deform_attn3d``; then ``output_proj`` over the concatenated heads.
Initialisation follows Deformable DETR: offsets start on rays in fixed directions at distances
1..P voxels (directions spread over the sphere here instead of the 2-D circle), attention weights
start uniform, value/output projections Xavier.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from tessera import kernels
from tessera.shared_blocks._checks import check_divisible, check_last_dim, check_mask
from tessera.shared_blocks.registry import BLOCKS


def _sphere_directions(n: int) -> torch.Tensor:
    """``n`` directions (x, y, t) on a Fibonacci sphere, scaled onto the unit cube surface."""
    i = torch.arange(n, dtype=torch.float64) + 0.5
    t = 1 - 2 * i / n  # t-component in (-1, 1)
    r = (1 - t**2).sqrt()
    phi = math.pi * (3 - math.sqrt(5)) * i
    d = torch.stack((r * phi.cos(), r * phi.sin(), t), dim=-1)
    return d / d.abs().amax(dim=-1, keepdim=True)


@BLOCKS.register_module()
class DeformableAttention3D(nn.Module):
    """Deformable cross-attention from queries to a multi-level (T, H, W) value volume.

    Args:
        dim: C, channels of queries and values (divisible by ``heads``).
        heads: Hh.
        levels: L, number of feature levels in ``value``.
        points: P, sampling points per head and level.

    Shapes:
        query: ``(B, Nq, C)``.
        reference_points: ``(B, Nq, 3)`` or per level ``(B, Nq, L, 3)``, (x, y, t) in [0, 1].
        value: ``(B, S, C)``, levels flattened in (T, H, W) order, S = Σ_l T_l H_l W_l.
        spatial_shapes: ``(L, 3)`` int64, rows (T, H, W).
        level_start_index: ``(L,)`` int64.
        value_mask: optional bool ``(B, S)``, True = keep (masked values read as zero).
        output: ``(B, Nq, C)``.
    """

    def __init__(self, dim: int, heads: int = 8, levels: int = 1, points: int = 4):
        super().__init__()
        check_divisible("dim", dim, heads, "heads")
        self.dim, self.heads, self.levels, self.points = dim, heads, levels, points
        self.sampling_offsets = nn.Linear(dim, heads * levels * points * 3)
        self.attention_weights = nn.Linear(dim, heads * levels * points)
        self.value_proj = nn.Linear(dim, dim)
        self.output_proj = nn.Linear(dim, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.sampling_offsets.weight)
        rays = _sphere_directions(self.heads)[:, None, None, :]  # (Hh, 1, 1, 3)
        dist = torch.arange(1, self.points + 1, dtype=torch.float64)[None, None, :, None]
        bias = (rays * dist).expand(self.heads, self.levels, self.points, 3)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(bias.reshape(-1))
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        for proj in (self.value_proj, self.output_proj):
            nn.init.xavier_uniform_(proj.weight)
            nn.init.zeros_(proj.bias)

    def forward(
        self,
        query: torch.Tensor,
        reference_points: torch.Tensor,
        value: torch.Tensor,
        spatial_shapes: torch.Tensor,
        level_start_index: torch.Tensor,
        value_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        check_last_dim("query", query, 3, self.dim)
        check_last_dim("value", value, 3, self.dim)
        b, nq, _ = query.shape
        hh, nl, npt = self.heads, self.levels, self.points
        if spatial_shapes.shape != (nl, 3):
            raise ValueError(
                f"spatial_shapes must be ({nl}, 3) for levels={nl}, "
                f"got shape {tuple(spatial_shapes.shape)}"
            )
        if reference_points.shape not in ((b, nq, 3), (b, nq, nl, 3)):
            raise ValueError(
                f"reference_points must be ({b}, {nq}, 3) or ({b}, {nq}, {nl}, 3), "
                f"got shape {tuple(reference_points.shape)}"
            )
        if value.shape[0] != b:
            raise ValueError(f"value has batch {value.shape[0]} but query has batch {b}")
        check_mask("value_mask", value_mask, value.shape[:2])

        v = self.value_proj(value)
        if value_mask is not None:
            v = v.masked_fill(~value_mask[..., None], 0.0)
        v = v.view(b, value.shape[1], hh, self.dim // hh)  # (B, S, Hh, Dh)

        offsets = self.sampling_offsets(query).view(b, nq, hh, nl, npt, 3)
        # Offsets are in voxels of each level; spatial_shapes rows are (T, H, W) -> (W, H, T).
        normaliser = spatial_shapes.flip(-1).to(query.dtype)  # (L, 3)
        if reference_points.dim() == 3:
            reference_points = reference_points[:, :, None, :].expand(b, nq, nl, 3)
        locations = (
            reference_points[:, :, None, :, None, :] + offsets / normaliser[:, None, :]
        )  # (B, Nq, Hh, L, P, 3)
        weights = self.attention_weights(query).view(b, nq, hh, nl * npt)
        weights = F.softmax(weights, dim=-1).view(b, nq, hh, nl, npt)
        out = kernels.deform_attn3d(v, spatial_shapes, level_start_index, locations, weights)
        return self.output_proj(out)
