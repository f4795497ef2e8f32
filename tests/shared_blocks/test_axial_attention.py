"""AxialAttention equals full attention restricted to each axis (brute force), plus Ho et
al.'s learned per-axis positional embeddings."""

import itertools

import pytest
import torch

from tessera.shared_blocks import AxialAttention

D64 = torch.float64


def masked_full_attention(axis_attn, tokens, grid, axis):
    """All-pairs attention over the flattened grid, allowed only between positions that
    differ in ``axis`` alone. tokens: (B, P, C) channels-last, P = prod(grid)."""
    coords = torch.tensor(list(itertools.product(*[range(s) for s in grid])))  # (P, A)
    others = [a for a in range(len(grid)) if a != axis]
    allowed = (coords[:, None, others] == coords[None, :, others]).all(-1)  # (P, P)
    b, p, _ = tokens.shape
    h = axis_attn.heads
    q, k, v = axis_attn.to_qkv(tokens).view(b, p, 3, h, -1).permute(2, 0, 3, 1, 4)
    scores = (q @ k.transpose(-1, -2)) / q.shape[-1] ** 0.5
    out = scores.masked_fill(~allowed, float("-inf")).softmax(-1) @ v  # (B, H, P, D)
    return axis_attn.to_out(out.transpose(1, 2).reshape(b, p, -1))


def _block(**kw):
    block = AxialAttention(**{"positional": False, **kw})
    with torch.no_grad():
        for p in block.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return block.double()


@pytest.mark.parametrize("grid", [(3, 4), (2, 3, 4)])
def test_sum_equals_axis_masked_full_attention(grid):
    block = _block(dim=8, num_axes=len(grid), heads=2)
    x = torch.randn(2, 8, *grid, dtype=D64)
    tokens = x.flatten(2).transpose(1, 2)  # (B, P, C)
    want = sum(masked_full_attention(block.attns[a], tokens, grid, a) for a in range(len(grid)))
    got = block(x).flatten(2).transpose(1, 2)
    torch.testing.assert_close(got, want)


def test_sequential_composes_axes_in_order_3d():
    grid = (2, 3, 4)
    block = _block(dim=8, num_axes=3, heads=2, combine="sequential", channels_first=False)
    x = torch.randn(1, *grid, 8, dtype=D64)
    tokens = x.reshape(1, -1, 8)
    for a in range(3):
        tokens = masked_full_attention(block.attns[a], tokens, grid, a)
    torch.testing.assert_close(block(x).reshape(1, -1, 8), tokens)


def test_axes_subset_and_channels_last_layout():
    grid = (3, 4, 2)
    block = _block(dim=8, num_axes=3, heads=2, axes=(2,))
    x = torch.randn(2, 8, *grid, dtype=D64)
    want = masked_full_attention(block.attns[0], x.flatten(2).transpose(1, 2), grid, 2)
    torch.testing.assert_close(block(x).flatten(2).transpose(1, 2), want)
    last = _block(dim=8, num_axes=3, heads=2, axes=(2,), channels_first=False)
    last.load_state_dict(block.state_dict())
    torch.testing.assert_close(last(x.movedim(1, -1)), block(x).movedim(1, -1))


def test_matches_the_axial_attention_package_with_shared_weights():
    axial_attention = pytest.importorskip("axial_attention")
    peer = axial_attention.AxialAttention(dim=8, dim_index=1, heads=2, num_dimensions=2)
    ours = AxialAttention(8, heads=2, positional=False)
    with torch.no_grad():
        for theirs in peer.axial_attentions:
            # Each peer module permutes its attended tensor dim to position -2.
            mine, fn = ours.attns[theirs.permutation[-2] - 2], theirs.fn
            mine.to_qkv.weight.copy_(torch.cat((fn.to_q.weight, fn.to_kv.weight)))
            mine.to_out.load_state_dict(fn.to_out.state_dict())
    x = torch.randn(2, 8, 5, 6)
    torch.testing.assert_close(ours(x), peer(x), rtol=1e-5, atol=1e-5)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="combine"):
        AxialAttention(8, combine="max")
    with pytest.raises(ValueError, match="axes"):
        AxialAttention(8, axes=(2,))
    with pytest.raises(ValueError, match="x must be"):
        AxialAttention(8, heads=2)(torch.randn(1, 4, 3, 3))


def test_positional_embeddings_are_on_by_default_and_added_per_axis():
    """block(x) == the same block without positions applied to x + E_0[i] + E_1[j]."""
    block = _block(dim=8, heads=2, positional=True, max_shape=(3, 5))
    assert AxialAttention(8, heads=2).positional  # default on
    assert [tuple(e.shape) for e in block.pos] == [(3, 8), (5, 8)]
    plain = _block(dim=8, heads=2)
    plain.attns.load_state_dict(block.attns.state_dict())
    x = torch.randn(2, 8, 3, 5, dtype=D64)
    with torch.no_grad():
        shifted = x + block.pos[0].t()[None, :, :, None] + block.pos[1].t()[None, :, None, :]
        torch.testing.assert_close(block(x), plain(shifted))


def test_positions_break_the_permutation_symmetry_along_an_axis():
    x = torch.randn(1, 8, 4, 4, dtype=D64)
    perm = torch.tensor([2, 0, 3, 1])
    plain = _block(dim=8, heads=2)
    with torch.no_grad():
        torch.testing.assert_close(plain(x[..., perm]), plain(x)[..., perm])
        positional = _block(dim=8, heads=2, positional=True, max_shape=(4, 4))
        assert not torch.allclose(positional(x[..., perm]), positional(x)[..., perm])


def test_other_lengths_interpolate_the_embeddings():
    block = _block(dim=8, heads=2, positional=True, max_shape=(4, 4))
    x = torch.randn(1, 8, 7, 2, dtype=D64)
    assert block(x).shape == x.shape
    same = torch.zeros(1, 4, 4, 8, dtype=D64)
    torch.testing.assert_close(
        block._with_positions(same)[0, :, 0] - block.pos[1][0], block.pos[0].detach()
    )
    with pytest.raises(ValueError, match="max_shape"):
        AxialAttention(8, heads=2, max_shape=(4,))
