"""CrossAttention, JointCrossAttention (MV-VTON), TextConditionedPooling (X-Pool), CrossViT."""

import pytest
import torch

from tessera.shared_blocks import (
    CrossAttention,
    CrossViTFusion,
    JointCrossAttention,
    TextConditionedPooling,
)

D64 = torch.float64


def perturb(module, scale=0.3):
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn_like(p))
    return module.double().eval()


def mha(q, k, v, heads, mask=None):
    """Brute-force softmax attention on (B, N, H*D) tensors; mask (B, M) True = keep."""
    b, n, c = q.shape
    d = c // heads
    q, k, v = (t.view(b, -1, heads, d).transpose(1, 2) for t in (q, k, v))
    scores = q @ k.transpose(-1, -2) / d**0.5
    if mask is not None:
        scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
    return (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, n, c)


def test_cross_attention_matches_brute_force_and_ignores_masked_context():
    block = perturb(CrossAttention(8, context_dim=6, heads=2))
    x, ctx = torch.randn(2, 5, 8, dtype=D64), torch.randn(2, 4, 6, dtype=D64)
    mask = torch.tensor([[True] * 4, [True, False, True, False]])
    k, v = block.to_kv(ctx).chunk(2, -1)
    want = block.to_out(mha(block.to_q(x), k, v, 2, mask))
    torch.testing.assert_close(block(x, ctx, mask), want)
    ctx2 = ctx.clone()
    ctx2[1, [1, 3]] = 100.0
    torch.testing.assert_close(block(x, ctx2, mask), want)


def test_cross_attention_without_context_is_self_attention():
    block = perturb(CrossAttention(8, heads=2))
    x = torch.randn(2, 5, 8, dtype=D64)
    torch.testing.assert_close(block(x), block(x, x))


def test_joint_cross_attention_at_init_equals_global_only_attention():
    block = JointCrossAttention(8, 6, heads=2, dim_head=4).double()
    x, ctx = torch.randn(2, 5, 8, dtype=D64), torch.randn(2, 1 + 7, 6, dtype=D64)
    # Softmax over a single global key is 1: every query receives v(c_g).
    want = block.to_out(block.to_v(ctx[:, :1])).expand(2, 5, 8)
    torch.testing.assert_close(block(x, ctx), want)
    ctx2 = ctx.clone()
    ctx2[:, 1:] = torch.randn(2, 7, 6, dtype=D64)  # local tokens have no effect yet
    torch.testing.assert_close(block(x, ctx2), want)


def test_joint_cross_attention_local_branch_through_fusion_vector():
    block = perturb(JointCrossAttention(8, 6, heads=2, dim_head=4, num_global=2))
    x, ctx = torch.randn(2, 5, 8, dtype=D64), torch.randn(2, 2 + 4, 6, dtype=D64)
    mask = torch.tensor([[True] * 4, [False, True, True, False]])
    cg, cl = ctx[:, :2], ctx[:, 2:]
    glob = mha(block.to_q(x), block.to_k(cg), block.to_v(cg), 2)
    local = mha(block.to_q_local(x), block.to_k_local(cl), block.to_v_local(cl), 2, mask)
    want = block.to_out(glob + local @ torch.diag(block.fusion))
    torch.testing.assert_close(block(x, ctx, mask), want)


def test_joint_cross_attention_needs_local_tokens():
    with pytest.raises(ValueError, match="context"):
        JointCrossAttention(8, 6, heads=2)(torch.randn(1, 3, 8), torch.randn(1, 1, 6))


def xpool_reference(block, text, video):
    """The official X-Pool ``Transformer`` forward, written out (heads = block.heads)."""
    h = block.heads
    t, f = block.norm1(text), block.norm1(video)
    bv, nf, c = f.shape
    d = c // h
    q = block.q_proj(t).view(-1, h, d)  # (Bt, H, d)
    k = block.k_proj(f).view(bv, nf, h, d)
    v = block.v_proj(f).view(bv, nf, h, d)
    logits = torch.einsum("vfhd,thd->vthf", k, q) / d**0.5
    weights = logits.softmax(dim=-1)  # over frames
    pooled = torch.einsum("vthf,vfhd->vthd", weights, v).reshape(bv, -1, c)
    attn = block.norm2(block.out_proj(pooled))
    return block.norm3(attn + block.linear_proj(attn)), pooled, weights, v


def test_text_conditioned_pooling_matches_official_formula_and_is_convex():
    block = perturb(TextConditionedPooling(8, heads=2, text_chunk_size=None))
    text, video = torch.randn(5, 8, dtype=D64), torch.randn(3, 6, 8, dtype=D64)
    want, pooled_ref, weights, v = xpool_reference(block, text, video)
    out = block(text, video)
    assert out.shape == (3, 5, 8)
    torch.testing.assert_close(out, want)
    pooled = block.pool(text, video)
    torch.testing.assert_close(pooled, pooled_ref)
    assert (weights >= 0).all()
    torch.testing.assert_close(weights.sum(-1), torch.ones_like(weights[..., 0]))
    # Convex combination: each pooled channel lies between the min and max over frames.
    vmin = v.reshape(3, 6, 8).amin(1)[:, None]
    vmax = v.reshape(3, 6, 8).amax(1)[:, None]
    assert ((pooled >= vmin - 1e-12) & (pooled <= vmax + 1e-12)).all()


def test_text_conditioned_pooling_identical_frames_ignore_the_text():
    block = perturb(TextConditionedPooling(8, heads=2))
    video = torch.randn(2, 1, 8, dtype=D64).expand(2, 6, 8)
    out = block(torch.randn(4, 8, dtype=D64), video)
    torch.testing.assert_close(out, out[:, :1].expand_as(out))
    distinct = block(torch.randn(4, 8, dtype=D64), torch.randn(2, 6, 8, dtype=D64))
    assert not torch.allclose(distinct, distinct[:, :1].expand_as(distinct))


def test_text_conditioned_pooling_chunked_equals_unchunked():
    block = perturb(TextConditionedPooling(8, heads=2, text_chunk_size=None))
    text, video = torch.randn(7, 8, dtype=D64), torch.randn(3, 5, 8, dtype=D64)
    mask = torch.rand(3, 5) > 0.3
    mask[:, 0] = True
    full = block(text, video, mask)
    for chunk in (1, 2, 3, 7, 100):
        block.text_chunk_size = chunk
        torch.testing.assert_close(block(text, video, mask), full)


def test_text_conditioned_pooling_frame_mask_drops_frames():
    block = perturb(TextConditionedPooling(8))
    text, video = torch.randn(3, 8, dtype=D64), torch.randn(2, 5, 8, dtype=D64)
    mask = torch.tensor([[True, True, True, False, False]] * 2)
    torch.testing.assert_close(block(text, video, mask), block(text, video[:, :3]))


def test_crossvit_fusion_updates_only_the_cls_token():
    block = perturb(CrossViTFusion(8, context_dim=12, heads=3))
    x, ctx = torch.randn(2, 4, 8, dtype=D64), torch.randn(2, 6, 12, dtype=D64)
    out = block(x, ctx)
    torch.testing.assert_close(out[:, 1:], x[:, 1:])
    cls = block.project(x[:, :1])
    tokens = block.norm(torch.cat((cls, ctx[:, 1:]), 1))
    attn = mha(block.to_q(tokens[:, :1]), block.to_k(tokens), block.to_v(tokens), 3)
    want = block.project_back(cls + block.to_out(attn))
    torch.testing.assert_close(out[:, :1], want)
    # The context's own CLS token is replaced, so it has no influence.
    ctx2 = ctx.clone()
    ctx2[:, 0] += 5.0
    torch.testing.assert_close(block(x, ctx2), out)


@pytest.mark.parametrize(
    "make",
    [
        lambda: (CrossAttention(8, heads=2), (torch.randn(1, 3, 8),)),
        lambda: (JointCrossAttention(8, 6, heads=2), (torch.randn(1, 3, 8), torch.randn(1, 3, 6))),
        lambda: (TextConditionedPooling(8), (torch.randn(2, 8), torch.randn(1, 3, 8))),
        lambda: (CrossViTFusion(8, heads=2), (torch.randn(1, 3, 8), torch.randn(1, 3, 8))),
    ],
)
def test_attention_goes_through_the_kernel(monkeypatch, make):
    from tessera import kernels

    calls = []
    real = kernels.attention
    monkeypatch.setattr(kernels, "attention", lambda *a, **k: calls.append(1) or real(*a, **k))
    block, args = make()
    block(*args)
    assert calls


def test_wrong_mask_raises():
    block = CrossAttention(8, heads=2)
    with pytest.raises(ValueError, match="context_mask"):
        block(torch.randn(1, 3, 8), torch.randn(1, 4, 8), torch.ones(1, 4))
    with pytest.raises(ValueError, match="frame_mask"):
        TextConditionedPooling(8)(torch.randn(2, 8), torch.randn(1, 3, 8), torch.ones(1, 2).bool())
