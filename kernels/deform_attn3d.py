"""Multi-scale deformable attention over 3-D (T, H, W) levels.

The Deformable DETR op (Zhu et al., 2021, arXiv:2010.04159; mmcv ``MultiScaleDeformableAttention``
convention) with one more coordinate: every query samples ``P`` points per level and head by
trilinear interpolation in a (T, H, W) value volume and sums them with its attention weights.
Sampling follows ``F.grid_sample`` on 5-D input with ``align_corners=False`` and zero padding, so
a location (x, y, t) in [0, 1] addresses pixel centres at ``x * W - 0.5`` (likewise y, t) and
points outside the volume read zeros. A level with T = 1 sampled at t = 0.5 is exactly the 2-D op.

Shapes (B batch, S = sum_l T_l * H_l * W_l keys, Hh heads, Dh head dim, Nq queries, L levels,
P points):
    value               (B, S, Hh, Dh)
    spatial_shapes      (L, 3) int64, rows (T, H, W)
    level_start_index   (L,) int64, offset of each level in S
    sampling_locations  (B, Nq, Hh, L, P, 3), last dim (x, y, t) in [0, 1]
    attention_weights   (B, Nq, Hh, L, P), already normalised
    output              (B, Nq, Hh * Dh)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tessera.kernels.dispatch import TRITON_AVAILABLE, KernelOp

if TRITON_AVAILABLE:
    from tessera.kernels import _deform_attn3d_triton as _triton

DEFORM_ATTN3D = KernelOp("deform_attn3d")


def _check_inputs(
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> None:
    if value.dim() != 4:
        raise ValueError(f"value must be (B, S, Hh, Dh), got shape {tuple(value.shape)}")
    if not value.is_floating_point():
        raise ValueError(f"value must be floating point, got {value.dtype}")
    if spatial_shapes.dim() != 2 or spatial_shapes.shape[1] != 3:
        raise ValueError(f"spatial_shapes must be (L, 3), got shape {tuple(spatial_shapes.shape)}")
    if spatial_shapes.is_floating_point():
        raise ValueError(f"spatial_shapes must be an integer tensor, got {spatial_shapes.dtype}")
    n_levels = spatial_shapes.shape[0]
    if level_start_index.shape != (n_levels,):
        raise ValueError(
            f"level_start_index must be ({n_levels},), got shape {tuple(level_start_index.shape)}"
        )
    b, s, hh, _ = value.shape
    if sampling_locations.dim() != 6 or sampling_locations.shape[-1] != 3:
        raise ValueError(
            "sampling_locations must be (B, Nq, Hh, L, P, 3), "
            f"got shape {tuple(sampling_locations.shape)}"
        )
    sb, _, sh, sl, _, _ = sampling_locations.shape
    if (sb, sh, sl) != (b, hh, n_levels):
        raise ValueError(
            f"sampling_locations {tuple(sampling_locations.shape)} does not match "
            f"B={b}, Hh={hh}, L={n_levels} from value and spatial_shapes"
        )
    if attention_weights.shape != sampling_locations.shape[:-1]:
        raise ValueError(
            f"attention_weights must be {tuple(sampling_locations.shape[:-1])}, "
            f"got shape {tuple(attention_weights.shape)}"
        )
    if sampling_locations.dtype != value.dtype or attention_weights.dtype != value.dtype:
        raise ValueError(
            "value, sampling_locations and attention_weights must share a dtype, got "
            f"{value.dtype}, {sampling_locations.dtype}, {attention_weights.dtype}"
        )
    sizes = spatial_shapes.prod(1)
    if int(sizes.sum()) != s:
        raise ValueError(f"value has S={s} keys but spatial_shapes sums to {int(sizes.sum())}")
    starts = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
    if not torch.equal(level_start_index.to(starts), starts):
        raise ValueError(
            f"level_start_index {level_start_index.tolist()} does not match the level sizes "
            f"of spatial_shapes (expected {starts.tolist()})"
        )


@DEFORM_ATTN3D.register("torch")
def deform_attn3d_torch(
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """Exact PyTorch path: one 5-D ``F.grid_sample`` per level, summed level by level.

    Only one level's (B * Hh, Dh, Nq, P) samples exist at a time; nothing of size L * P * Dh
    per query is kept beyond what autograd needs.
    """
    b, _, hh, dh = value.shape
    _, nq, _, _, p, _ = sampling_locations.shape
    grids = 2 * sampling_locations - 1  # grid_sample wants [-1, 1]
    out = value.new_zeros(b * hh, dh, nq)
    shapes = spatial_shapes.tolist()
    starts = level_start_index.tolist()
    for lvl, ((t, h, w), start) in enumerate(zip(shapes, starts, strict=True)):
        # (B, T*H*W, Hh, Dh) -> (B*Hh, Dh, T, H, W)
        v = value[:, start : start + t * h * w].permute(0, 2, 3, 1).reshape(b * hh, dh, t, h, w)
        # (B, Nq, Hh, P, 3) -> (B*Hh, 1, Nq, P, 3)
        grid = grids[:, :, :, lvl].transpose(1, 2).reshape(b * hh, 1, nq, p, 3)
        sampled = F.grid_sample(v, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        # (B*Hh, Dh, 1, Nq, P) weighted by (B*Hh, 1, 1, Nq, P), summed over P
        weights = attention_weights[:, :, :, lvl].transpose(1, 2).reshape(b * hh, 1, 1, nq, p)
        out = out + (sampled * weights).sum(-1).squeeze(2)
    # (B*Hh, Dh, Nq) -> (B, Nq, Hh*Dh)
    return out.view(b, hh, dh, nq).permute(0, 3, 1, 2).reshape(b, nq, hh * dh)


if TRITON_AVAILABLE:
    DEFORM_ATTN3D.register("triton", *_triton.CONSTRAINTS)(_triton.deform_attn3d_triton)


def deform_attn3d(
    value: torch.Tensor,
    spatial_shapes: torch.Tensor,
    level_start_index: torch.Tensor,
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """Multi-scale deformable attention with trilinear sampling in (T, H, W) levels.

    Args:
        value: (B, S, Hh, Dh) values of all levels, flattened level after level in (T, H, W)
            order.
        spatial_shapes: (L, 3) integer (T, H, W) of each level.
        level_start_index: (L,) integer start of each level along S.
        sampling_locations: (B, Nq, Hh, L, P, 3) normalised (x, y, t) in [0, 1]; points outside
            the volume read zeros (``grid_sample(align_corners=False, padding_mode="zeros")``).
        attention_weights: (B, Nq, Hh, L, P) weights of the samples (e.g. softmaxed over L * P).

    Returns:
        (B, Nq, Hh * Dh) attended values.

    Raises:
        ValueError: if shapes or dtypes are inconsistent.
    """
    _check_inputs(value, spatial_shapes, level_start_index, sampling_locations, attention_weights)
    return DEFORM_ATTN3D(
        value, spatial_shapes, level_start_index, sampling_locations, attention_weights
    )
