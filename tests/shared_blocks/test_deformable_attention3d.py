"""DeformableAttention3D: trilinear sampling around 3-D reference points."""

import pytest
import torch

from tessera.shared_blocks import DeformableAttention3D

D64 = torch.float64


def trilinear(volume, x, y, t):
    """Hand-written trilinear sample of volume (T, H, W, C) at (x, y, t) in [0, 1],
    pixel centres at (i + 0.5) / size, zeros outside (grid_sample, align_corners=False)."""
    tt, hh, ww, c = volume.shape
    px, py, pt = x * ww - 0.5, y * hh - 0.5, t * tt - 0.5
    x0, y0, t0 = int(torch.floor(px)), int(torch.floor(py)), int(torch.floor(pt))
    out = torch.zeros(c, dtype=volume.dtype)
    for dt in (0, 1):
        for dy in (0, 1):
            for dx in (0, 1):
                xi, yi, ti = x0 + dx, y0 + dy, t0 + dt
                w = (1 - abs(px - xi)) * (1 - abs(py - yi)) * (1 - abs(pt - ti))
                if 0 <= xi < ww and 0 <= yi < hh and 0 <= ti < tt:
                    out = out + w * volume[ti, yi, xi]
    return out


def _block(dim=8, heads=2, levels=1, points=1):
    block = DeformableAttention3D(dim, heads=heads, levels=levels, points=points).double()
    with torch.no_grad():
        block.sampling_offsets.weight.zero_()
        block.sampling_offsets.bias.zero_()
        for lin in (block.value_proj, block.output_proj):
            lin.weight.add_(0.3 * torch.randn_like(lin.weight))
            lin.bias.normal_()
    return block


def _sample_all(block, value, shapes, starts, ref_b_q):
    """Per-head trilinear samples at a reference point, one (C,) vector per level."""
    v = block.value_proj(value)  # (S, C)
    per_level = []
    for (t, h, w), s0 in zip(shapes.tolist(), starts.tolist(), strict=True):
        vol = v[s0 : s0 + t * h * w].view(t, h, w, -1)
        per_level.append(trilinear(vol, *ref_b_q))
    return per_level


def test_zero_offsets_single_point_is_the_trilinear_sample_at_the_reference():
    block = _block()
    shapes, starts = torch.tensor([[3, 4, 5]]), torch.tensor([0])
    value = torch.randn(2, 60, 8, dtype=D64)
    query = torch.randn(2, 4, 8, dtype=D64)
    ref = torch.rand(2, 4, 3, dtype=D64)
    ref[0, 0] = torch.tensor([0.02, 0.5, 0.97])  # near the border: partly zero padding
    out = block(query, ref, value, shapes, starts)
    for b in range(2):
        for q in range(4):
            (sample,) = _sample_all(block, value[b], shapes, starts, ref[b, q])
            torch.testing.assert_close(out[b, q], block.output_proj(sample))


def test_two_levels_with_uniform_weights_average_the_level_samples():
    block = _block(levels=2)
    shapes, starts = torch.tensor([[2, 3, 4], [1, 2, 2]]), torch.tensor([0, 24])
    value = torch.randn(1, 28, 8, dtype=D64)
    ref = torch.rand(1, 3, 3, dtype=D64)
    out = block(torch.randn(1, 3, 8, dtype=D64), ref, value, shapes, starts)
    for q in range(3):
        a, b = _sample_all(block, value[0], shapes, starts, ref[0, q])
        torch.testing.assert_close(out[0, q], block.output_proj((a + b) / 2))


def test_offsets_are_in_voxels_of_the_level():
    block = _block(heads=1, dim=4)
    with torch.no_grad():
        block.sampling_offsets.bias.copy_(torch.tensor([1.0, -1.0, 1.0]))  # +1 x, -1 y, +1 t
    shapes, starts = torch.tensor([[4, 5, 6]]), torch.tensor([0])
    value = torch.randn(1, 120, 4, dtype=D64)
    ref = torch.tensor([[[0.4, 0.5, 0.3]]], dtype=D64)
    out = block(torch.randn(1, 1, 4, dtype=D64), ref, value, shapes, starts)
    moved = ref[0, 0] + torch.tensor([1 / 6, -1 / 5, 1 / 4], dtype=D64)
    (sample,) = _sample_all(block, value[0], shapes, starts, moved)
    torch.testing.assert_close(out[0, 0], block.output_proj(sample))


def test_value_mask_zeroes_masked_values():
    block = _block()
    with torch.no_grad():
        block.value_proj.bias.zero_()  # so a zero value row projects to exactly zero
    shapes, starts = torch.tensor([[2, 3, 3]]), torch.tensor([0])
    value = torch.randn(1, 18, 8, dtype=D64)
    mask = torch.rand(1, 18) > 0.5
    args = (torch.randn(1, 5, 8, dtype=D64), torch.rand(1, 5, 3, dtype=D64))
    zeroed = value.masked_fill(~mask[..., None], 0.0)
    masked = block(*args, value, shapes, starts, value_mask=mask)
    torch.testing.assert_close(masked, block(*args, zeroed, shapes, starts))
    assert not torch.allclose(masked, block(*args, value, shapes, starts))


def test_gradient_reaches_reference_points():
    block = _block(points=2)
    with torch.no_grad():
        block.sampling_offsets.bias.normal_()
    shapes, starts = torch.tensor([[2, 3, 4]]), torch.tensor([0])
    ref = (torch.rand(1, 3, 3, dtype=D64) * 0.6 + 0.2).requires_grad_()
    value = torch.randn(1, 24, 8, dtype=D64)
    query = torch.randn(1, 3, 8, dtype=D64)
    assert torch.autograd.gradcheck(
        lambda r: block(query, r, value, shapes, starts), (ref,), eps=1e-7, atol=1e-5
    )


def test_uses_the_kernel(monkeypatch):
    from tessera import kernels

    calls = []
    real = kernels.deform_attn3d
    monkeypatch.setattr(kernels, "deform_attn3d", lambda *a: calls.append(1) or real(*a))
    block = DeformableAttention3D(8, heads=2)
    block(
        torch.randn(1, 2, 8),
        torch.rand(1, 2, 3),
        torch.randn(1, 4, 8),
        torch.tensor([[1, 2, 2]]),
        torch.tensor([0]),
    )
    assert calls


def test_bad_arguments_raise():
    block = DeformableAttention3D(8, heads=2, levels=2)
    shapes = torch.tensor([[1, 2, 2]])
    with pytest.raises(ValueError, match="spatial_shapes"):
        block(
            torch.randn(1, 2, 8),
            torch.rand(1, 2, 3),
            torch.randn(1, 4, 8),
            shapes,
            torch.tensor([0]),
        )
    with pytest.raises(ValueError, match="dim"):
        DeformableAttention3D(10, heads=4)
