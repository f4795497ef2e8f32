"""JointAttention (MossFormer): local relu² term, global linear term, padding, causality."""

import pytest
import torch

from tessera.shared_blocks import JointAttention
from tessera.shared_blocks.rotary import RotaryEmbedding

D64 = torch.float64


def brute_force_attend(qq, lq, qk, lk, v, g, causal):
    """Full N x N matrices with the chunk structure as masks: no padding anywhere."""
    n = v.shape[1]
    i = torch.arange(n)[:, None]
    j = torch.arange(n)[None, :]
    same_chunk = (i // g) == (j // g)
    local_mask = same_chunk & (j <= i) if causal else same_chunk
    local = (torch.relu(qq @ qk.transpose(-1, -2) / g) ** 2 * local_mask) @ v
    if causal:
        earlier_chunks = (j // g) < (i // g)
        glob = ((lq @ lk.transpose(-1, -2)) * earlier_chunks) @ v / g
    else:
        glob = lq @ lk.transpose(-1, -2) @ v / n
    return local + glob


def _qkv(n, dqk=6, dv=5):
    return [torch.randn(2, n, dqk, dtype=D64) for _ in range(4)] + [
        torch.randn(2, n, dv, dtype=D64)
    ]


def test_group_at_least_n_local_term_is_full_relu2_attention():
    n = 10
    block = JointAttention(8, group_size=16, query_key_dim=6, dropout=0.0).double().eval()
    qq, lq, qk, lk, v = _qkv(n)
    # Zero global queries isolate the local term.
    got = block.attend(qq, torch.zeros_like(lq), qk, lk, v)
    want = torch.relu(qq @ qk.transpose(-1, -2) / 16) ** 2 @ v
    torch.testing.assert_close(got, want)
    # And with the global term: lin_q (Σ lin_kᵀ v) / N over the whole sequence.
    got = block.attend(qq, lq, qk, lk, v)
    torch.testing.assert_close(got, want + lq @ (lk.transpose(-1, -2) @ v) / n)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("n", [8, 10, 13])
def test_chunked_attention_independent_of_padding(n, causal):
    g = 4
    block = JointAttention(8, group_size=g, query_key_dim=6, dropout=0.0, causal=causal)
    block = block.double().eval()
    qq, lq, qk, lk, v = _qkv(n)
    got = block.attend(qq, lq, qk, lk, v)
    torch.testing.assert_close(got, brute_force_attend(qq, lq, qk, lk, v, g, causal))


def _tiny(causal):
    block = JointAttention(
        8, group_size=4, query_key_dim=8, expansion_factor=2.0, dropout=0.0, causal=causal
    )
    with torch.no_grad():
        for p in block.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return block.double().eval()


@pytest.mark.parametrize("causal", [True, False])
def test_causal_never_looks_ahead(causal):
    block = _tiny(causal)
    x = torch.randn(2, 13, 8, dtype=D64)
    y = x.clone()
    y[:, 6:] += torch.randn(2, 7, 8, dtype=D64)
    past_unchanged = torch.allclose(block(x)[:, :6], block(y)[:, :6], rtol=0, atol=1e-12)
    # The non-causal unit does see the future (so the check above can fail).
    assert past_unchanged == causal
    assert not torch.allclose(block(x)[:, 6:], block(y)[:, 6:])


def test_batch_items_do_not_interact():
    block = _tiny(False)
    x = torch.randn(3, 11, 8, dtype=D64)
    together = block(x)
    alone = torch.cat([block(x[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(together, alone)


def test_token_shift_delays_half_the_channels():
    """The first half of the channels reaches the attention path one step late."""
    block = _tiny(True)
    x = torch.randn(1, 6, 8, dtype=D64)
    y = x.clone()
    y[:, 0, :4] += 1.0  # only the delayed half of token 0
    # Residual aside, output 0 does not see the change; output 1 does.
    torch.testing.assert_close((block(x) - x)[:, 0], (block(y) - y)[:, 0])
    assert not torch.allclose((block(x) - x)[:, 1], (block(y) - y)[:, 1])


def test_rotary_matches_rotary_embedding_torch():
    rotary_embedding_torch = pytest.importorskip("rotary_embedding_torch")
    x = torch.randn(2, 19, 40)
    ref = rotary_embedding_torch.RotaryEmbedding(dim=32).rotate_queries_or_keys(x)
    torch.testing.assert_close(RotaryEmbedding(32)(x), ref, rtol=1e-5, atol=1e-5)


def test_global_term_goes_through_the_kernel(monkeypatch):
    from tessera import kernels

    calls = []
    real = kernels.chunked_linear_attention

    def spy(*args, **kwargs):
        calls.append(kwargs["causal"])
        return real(*args, **kwargs)

    monkeypatch.setattr(kernels, "chunked_linear_attention", spy)
    _tiny(False)(torch.randn(1, 9, 8, dtype=D64))
    _tiny(True)(torch.randn(1, 9, 8, dtype=D64))
    assert calls == [False, True]


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="x must be"):
        JointAttention(8)(torch.randn(2, 5, 7))
    with pytest.raises(ValueError, match="kernel_size"):
        JointAttention(8, kernel_size=4)
    with pytest.raises(ValueError, match="norm"):
        JointAttention(8, norm="rms")


def official_forward(block, x):
    """Token shift, FFConvM, offset-scale, rotary, joint attention and gating, by hand."""
    rotary_embedding_torch = pytest.importorskip("rotary_embedding_torch")
    import torch.nn.functional as F

    rot = rotary_embedding_torch.RotaryEmbedding(dim=8)

    def ffconvm(m, t):
        h = F.silu(m.linear(m.norm(t)))
        conv = F.conv1d(h.transpose(1, 2), m.conv.weight, padding=8, groups=h.shape[-1])
        return h + conv.transpose(1, 2)

    shifted = torch.cat((F.pad(x[..., :4], (0, 0, 1, -1)), x[..., 4:]), dim=-1)
    v, u = ffconvm(block.to_hidden, shifted).chunk(2, dim=-1)
    qk = ffconvm(block.to_qk, shifted)
    qq, lq, qkk, lk = (
        rot.rotate_queries_or_keys(qk * block.gamma[i] + block.beta[i]) for i in range(4)
    )
    att_v = brute_force_attend(qq, lq, qkk, lk, v, 4, False)
    att_u = brute_force_attend(qq, lq, qkk, lk, u, 4, False)
    return x + ffconvm(block.to_out, (att_u * v) * torch.sigmoid(att_v * u))


def test_forward_matches_the_official_unit_written_out():
    block = _tiny(False)
    x = torch.randn(2, 10, 8, dtype=D64)
    torch.testing.assert_close(block(x), official_forward(block, x))


def test_inference_and_gradients_match_the_written_out_unit():
    """The in-place inference path gives the same output; autograd sees the same function."""
    block = _tiny(False)
    x = torch.randn(2, 10, 8, dtype=D64, requires_grad=True)
    with torch.no_grad():
        torch.testing.assert_close(block(x), official_forward(block, x))
    params = [x, *block.parameters()]
    got = torch.autograd.grad(block(x).square().sum(), params)
    want = torch.autograd.grad(official_forward(block, x).square().sum(), params)
    for g_got, g_want in zip(got, want, strict=True):
        # rotary-embedding-torch builds its angles in fp32: ~1e-8 relative, amplified by autograd.
        torch.testing.assert_close(g_got, g_want, rtol=1e-6, atol=1e-5)
