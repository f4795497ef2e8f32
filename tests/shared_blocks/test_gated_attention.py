"""GatedMultiheadAttention: SDPA output times a head-specific sigmoid gate (Qiu et al.)."""

import pytest
import torch

from tessera.shared_blocks import GatedMultiheadAttention

D64 = torch.float64


def _block(**kw):
    block = GatedMultiheadAttention(8, heads=2, **kw).double()
    with torch.no_grad():
        for p in block.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return block


def reference(block, x, mask=None, causal=False):
    b, n, _ = x.shape
    q, k, v = (t.view(b, n, 2, 4).transpose(1, 2) for t in block.qkv(x).chunk(3, -1))
    scores = q @ k.transpose(-1, -2) / 2.0
    allowed = torch.ones(b, 1, n, n, dtype=torch.bool)
    if mask is not None:
        allowed = allowed & mask[:, None, None, :]
    if causal:
        allowed = allowed & torch.ones(n, n, dtype=torch.bool).tril()
    out = scores.masked_fill(~allowed, float("-inf")).softmax(-1) @ v  # (B, H, N, D)
    out = out.transpose(1, 2).reshape(b, n, 8)
    if block.gate is not None:
        out = out * torch.sigmoid(block.gate(x))
    return block.proj(out)


@pytest.mark.parametrize("causal", [False, True])
def test_matches_gated_attention_formula(causal):
    block = _block(causal=causal)
    x = torch.randn(2, 6, 8, dtype=D64)
    mask = torch.tensor([[True] * 6, [True, True, False, True, False, True]])
    torch.testing.assert_close(block(x, mask), reference(block, x, mask, causal))


def test_without_gate_equals_torch_multihead_attention():
    block = _block(gate=False)
    mha = torch.nn.MultiheadAttention(8, 2, batch_first=True).double()
    with torch.no_grad():
        mha.in_proj_weight.copy_(block.qkv.weight)
        mha.in_proj_bias.copy_(block.qkv.bias)
        mha.out_proj.load_state_dict(block.proj.state_dict())
    x = torch.randn(2, 5, 8, dtype=D64)
    keep = torch.tensor([[True] * 5, [True, False, True, True, False]])
    want, _ = mha(x, x, x, key_padding_mask=~keep, need_weights=False)
    torch.testing.assert_close(block(x, keep), want)


def test_gate_is_fused_into_the_kernel_call(monkeypatch):
    from tessera import kernels

    gates = []
    real = kernels.attention

    def spy(*args, **kwargs):
        gates.append(kwargs.get("gate"))
        return real(*args, **kwargs)

    monkeypatch.setattr(kernels, "attention", spy)
    x = torch.randn(1, 3, 8, dtype=D64)
    _block()(x)
    _block(gate=False)(x)
    assert gates[0].shape == (1, 2, 3, 4) and gates[1] is None
