"""The three voxel attentions against brute-force fp64 attention loops."""

import pytest
import torch
import torch.nn.functional as F

from tessera.kernels import varlen_attention
from tessera.shared_blocks.voxel import DSVTPooling, FlatWindowAttention, ScatteredLinearAttention
from tessera.shared_blocks.voxel.dsvt import SetAttentionLayer, cell_attention, rotated_sets
from tessera.shared_blocks.voxel.flatformer import flat_window_groups
from tessera.shared_blocks.voxel.partition import window_offsets

GRID = (1, 24, 28)
C, H = 16, 4


def mha(xq, xk, xv, wq, bq, wk, bk, wv, bv, heads):
    """Dense multi-head softmax attention over all rows, (n, C) -> (n, C) before out-proj."""
    q, k, v = F.linear(xq, wq, bq), F.linear(xk, wk, bk), F.linear(xv, wv, bv)
    d = q.shape[1] // heads
    outs = []
    for h in range(heads):
        s = slice(h * d, (h + 1) * d)
        a = torch.softmax(q[:, s] @ k[:, s].T / d**0.5, dim=-1)
        outs.append(a @ v[:, s])
    return torch.cat(outs, 1)


def set_layer_brute(layer, x, pos, members):
    w_q, w_k, w_v = layer.qkv.weight.chunk(3)
    b_q, b_k, b_v = layer.qkv.bias.chunk(3)
    xm, pm = x[members], pos[members]
    out = mha(xm + pm, xm + pm, xm, w_q, b_q, w_k, b_k, w_v, b_v, layer.heads)
    return F.linear(out, layer.proj.weight, layer.proj.bias)


def test_dsvt_one_window_equals_dense_attention(scene):
    x, coords = scene(60, (1, 10, 10), batch_size=1, channels=C, dtype=torch.float64)
    pos = torch.randn_like(x)
    layer = SetAttentionLayer(C, H, 32).double()
    sets = rotated_sets(coords, (1, 10, 10), (1, 10, 10), (0, 0, 0), set_size=64)
    assert sets.sets_y.num_sets == 1
    out = layer.set_attention(x, pos, sets.sets_y)
    ref = set_layer_brute(layer, x, pos, torch.arange(60))
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("which", ["sets_y", "sets_x"])
def test_dsvt_sets_equal_per_set_loop(scene, which):
    """Masked repeats: each set attends exactly over its distinct voxels."""
    x, coords = scene(200, GRID, channels=C, dtype=torch.float64, seed=1)
    pos = torch.randn_like(x)
    layer = SetAttentionLayer(C, H, 32).double()
    part = getattr(rotated_sets(coords, GRID, (1, 8, 8), (0, 4, 4), set_size=7), which)
    out = layer.set_attention(x, pos, part)
    ref = torch.empty_like(out)
    for s in range(part.num_sets):
        members = torch.unique_consecutive(part.voxel_index[s])
        ref[members] = set_layer_brute(layer, x, pos, members)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)


def test_dsvt_pooling_matches_brute_force(scene):
    x, coords = scene(150, (4, 12, 12), channels=C, dtype=torch.float64, seed=2)
    pool = DSVTPooling(C, (2, 2, 3), heads=H).double()
    out, pooled_coords, grid, cell = pool(x, coords, (4, 12, 12))
    assert grid == (2, 6, 4)
    stride = torch.tensor([2, 2, 3])
    cell_coords = torch.cat([coords[:, :1], coords[:, 1:] // stride], 1)
    assert torch.equal(pooled_coords[cell], cell_coords)
    keys = [tuple(c) for c in pooled_coords.tolist()]
    assert keys == sorted(set(keys))  # one row per occupied cell, (b, z, y, x) order
    for m in range(out.shape[0]):
        members = (cell == m).nonzero().squeeze(1)
        rel = coords[members, 1:] % stride
        slot = (rel[:, 0] * 2 + rel[:, 1]) * 3 + rel[:, 2]
        query = x[members].max(0).values[None]
        att = mha(
            query, x[members] + pool.pos_embedding[slot], x[members],
            pool.q_proj.weight, pool.q_proj.bias, pool.k_proj.weight, pool.k_proj.bias,
            pool.v_proj.weight, pool.v_proj.bias, H,
        )  # fmt: skip
        ref = F.layer_norm(
            F.linear(att, pool.proj.weight, pool.proj.bias) + query,
            (C,), pool.norm.weight, pool.norm.bias,
        )  # fmt: skip
        torch.testing.assert_close(out[m : m + 1], ref, rtol=1e-10, atol=1e-10)


def flat_brute(attn, x, pe, members):
    w_q, w_k = attn.qk.weight.chunk(2)
    b_q, b_k = attn.qk.bias.chunk(2)
    xm = x[members]
    out = mha(xm + pe[members], xm + pe[members], xm, w_q, b_q, w_k, b_k,
              attn.v.weight, attn.v.bias, attn.heads)  # fmt: skip
    return F.linear(out, attn.proj.weight, attn.proj.bias)


@pytest.mark.parametrize("order", range(4))
def test_flatformer_group_larger_than_n_equals_dense(scene, order):
    x, coords = scene(70, GRID, batch_size=1, channels=C, dtype=torch.float64, seed=3)
    pe = torch.randn_like(x)
    attn = FlatWindowAttention(C, H).double()
    groups = flat_window_groups(coords, GRID, (5, 5), group_size=100)[order]
    assert groups.num_groups == 1 and groups.key_mask is not None
    out = attn(x, pe, groups)
    torch.testing.assert_close(
        out, flat_brute(attn, x, pe, torch.arange(70)), rtol=1e-10, atol=1e-10
    )


def test_flatformer_groups_equal_per_group_loop(scene):
    x, coords = scene(230, GRID, batch_size=3, channels=C, dtype=torch.float64, seed=4)
    pe = torch.randn_like(x)
    attn = FlatWindowAttention(C, H).double()
    groups = flat_window_groups(coords, GRID, (5, 5), group_size=24)[1]
    out = attn(x, pe, groups)
    ref = torch.empty_like(out)
    home_group = groups.home_slot // 24
    for g in range(groups.num_groups):
        members = torch.unique_consecutive(groups.voxel_index[g])
        res = flat_brute(attn, x, pe, members)
        mine = home_group[members] == g
        ref[members[mine]] = res[mine]
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)


def test_scattered_linear_attention_equals_per_window_loop(scene):
    x, coords = scene(220, GRID, channels=C, dtype=torch.float64, seed=5)
    pe = torch.randn_like(x)
    sla = ScatteredLinearAttention(C, H).double()
    order, offsets, _ = window_offsets(coords, GRID, (1, 6, 6))
    out = sla(x[order], offsets, pe[order])
    xs, ps = x[order], pe[order]
    w_q, w_k = sla.qk.weight.chunk(2)
    b_q, b_k = sla.qk.bias.chunk(2)
    d = C // H
    ref = torch.empty_like(out)
    for w in range(offsets.numel() - 1):
        rows = slice(int(offsets[w]), int(offsets[w + 1]))
        q = F.relu(F.linear(xs[rows] + ps[rows], w_q, b_q))
        k = F.relu(F.linear(xs[rows] + ps[rows], w_k, b_k))
        v = F.linear(xs[rows], sla.v.weight, sla.v.bias)
        heads = []
        for h in range(H):
            s = slice(h * d, (h + 1) * d)
            heads.append(
                (q[:, s] @ (k[:, s].T @ v[:, s])) / (q[:, s] @ k[:, s].sum(0) + 1e-6)[:, None]
            )
        ref[rows] = F.linear(torch.cat(heads, 1), sla.proj.weight, sla.proj.bias)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_cell_attention_equals_varlen_attention(dtype):
    """The segment-reduction pooling path gives the numbers of the varlen attention path."""
    counts = torch.tensor([1, 5, 2, 8, 1, 3])  # ragged cells up to a 2x2x2 stride volume
    m, n, heads, d = counts.numel(), int(counts.sum()), 4, 8
    q = torch.randn(m, heads, d, dtype=dtype, requires_grad=True)
    k, v = (torch.randn(n, heads, d, dtype=dtype, requires_grad=True) for _ in range(2))
    out = cell_attention(q, k, v, counts)
    cu_q = torch.arange(m + 1, dtype=torch.int32)
    cu_k = torch.cat([counts.new_zeros(1), counts.cumsum(0)]).to(torch.int32)
    ref = varlen_attention(q, k, v, cu_q, cu_k, 1, int(counts.max()))
    tol = 1e-12 if dtype == torch.float64 else 1e-6
    torch.testing.assert_close(out, ref, rtol=tol, atol=tol)
    grad = torch.randn_like(out)
    for a, b in zip(
        torch.autograd.grad(out, (q, k, v), grad),
        torch.autograd.grad(ref, (q, k, v), grad),
        strict=True,
    ):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)
