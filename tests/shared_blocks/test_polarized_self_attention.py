"""PolarizedSelfAttention: both official variants, masks written out by hand."""

import pytest
import torch

from tessera.shared_blocks import PolarizedSelfAttention

D64 = torch.float64


def w(conv):
    return conv.weight[:, :, 0, 0]  # (Cout, Cin)


def channel_mask(block, x):
    b, c, h, wd = x.shape
    flat = x.reshape(b, c, h * wd)
    q = torch.softmax(torch.einsum("oc,bcn->bon", w(block.ch_wq), flat), dim=-1)  # (B, 1, HW)
    v = torch.einsum("oc,bcn->bon", w(block.ch_wv), flat)  # (B, C/2, HW)
    z = (v * q).sum(-1)  # (B, C/2)
    if block.mode == "parallel":
        z = z @ w(block.ch_wz).T
    else:
        first, norm, _, last = block.ch_wz
        z = z @ w(first).T + first.bias
        z = (z - z.mean(-1, keepdim=True)) / torch.sqrt(
            z.var(-1, unbiased=False, keepdim=True) + 1e-5
        )
        z = torch.relu(z * norm.weight.view(-1) + norm.bias.view(-1))
        z = z @ w(last).T + last.bias
    return torch.sigmoid(z)[:, :, None, None]


def spatial_mask(block, x):
    b, c, h, wd = x.shape
    flat = x.reshape(b, c, h * wd)
    q = torch.einsum("oc,bcn->bon", w(block.sp_wq), flat).mean(-1)  # (B, C/2), global avg pool
    v = torch.einsum("oc,bcn->bon", w(block.sp_wv), flat)  # (B, C/2, HW)
    if block.mode == "parallel":
        z = torch.softmax(torch.einsum("bo,bon->bn", q, v), dim=-1)
    else:
        z = torch.einsum("bo,bon->bn", q, torch.softmax(v, dim=-1))
    return torch.sigmoid(z).view(b, 1, h, wd)


def _block(mode):
    block = PolarizedSelfAttention(16, mode=mode).double()
    with torch.no_grad():
        for p in block.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return block


@pytest.mark.parametrize("mode", ["parallel", "sequential"])
def test_output_is_input_times_the_two_masks(mode):
    block = _block(mode)
    x = torch.randn(2, 16, 5, 3, dtype=D64)
    ch = channel_mask(block, x)
    torch.testing.assert_close(block.channel_mask(x), ch)
    torch.testing.assert_close(block.spatial_mask(x), spatial_mask(block, x))
    if mode == "parallel":
        want = x * ch + x * spatial_mask(block, x)
    else:
        y = x * ch
        want = y * spatial_mask(block, y)
    torch.testing.assert_close(block(x), want)
    assert ch.shape == (2, 16, 1, 1)


def test_variants_differ_and_masks_are_in_unit_interval():
    x = torch.randn(2, 16, 4, 4, dtype=D64)
    for mode in ("parallel", "sequential"):
        block = _block(mode)
        for m in (block.channel_mask(x), block.spatial_mask(x)):
            assert ((m > 0) & (m < 1)).all()
    assert _block("parallel").ch_wz.weight.shape == (16, 8, 1, 1)
    assert _block("sequential").ch_wz[0].weight.shape == (2, 8, 1, 1)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="mode"):
        PolarizedSelfAttention(16, mode="both")
    with pytest.raises(ValueError, match="channels"):
        PolarizedSelfAttention(12, mode="sequential")
    with pytest.raises(ValueError, match="x must be"):
        PolarizedSelfAttention(16)(torch.randn(2, 8, 4, 4))
