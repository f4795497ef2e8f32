"""SentenceAttentionBlock: the official softmax-over-channels gate."""

import pytest
import torch

from tessera.shared_blocks import SentenceAttentionBlock

D64 = torch.float64


def _block():
    block = SentenceAttentionBlock(channels=6, text_dim=5).double()
    with torch.no_grad():
        for p in block.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return block


def test_matches_the_formula_by_hand():
    block = _block()
    x, s = torch.randn(2, 6, 4, 3, dtype=D64), torch.randn(2, 5, dtype=D64)
    h = s @ block.fc1.weight.T + block.fc1.bias  # (B, 4d)
    h = (h - h.mean(-1, keepdim=True)) / torch.sqrt(h.var(-1, unbiased=False, keepdim=True) + 1e-5)
    h = torch.relu(h * block.norm.weight + block.norm.bias)
    logits = h @ block.fc2.weight.T + block.fc2.bias  # (B, C)
    gate = torch.exp(logits) / torch.exp(logits).sum(-1, keepdim=True)
    torch.testing.assert_close(block.gate(s), gate)
    torch.testing.assert_close(block(x, s), x * gate[:, :, None, None])


def test_gate_sums_to_one_over_channels_and_ignores_the_image():
    block = _block()
    s = torch.randn(3, 5, dtype=D64)
    gate = block.gate(s)
    assert (gate > 0).all()
    torch.testing.assert_close(gate.sum(-1), torch.ones(3, dtype=D64))
    x1, x2 = torch.randn(3, 6, 2, 2, dtype=D64), torch.randn(3, 6, 2, 2, dtype=D64)
    torch.testing.assert_close(block(x1, s) / x1, block(x2, s) / x2)


def test_gradient_reaches_the_sentence_embedding():
    block = _block()
    s = torch.randn(2, 5, dtype=D64, requires_grad=True)
    (block(torch.randn(2, 6, 3, 3, dtype=D64), s) ** 2).sum().backward()
    assert s.grad is not None and s.grad.abs().sum() > 0


def test_any_number_of_spatial_dims():
    block = _block()
    x, s = torch.randn(2, 6, 7, dtype=D64), torch.randn(2, 5, dtype=D64)
    torch.testing.assert_close(block(x, s), x * block.gate(s)[:, :, None])


def test_bad_shapes_raise():
    block = _block()
    with pytest.raises(ValueError, match="x must be"):
        block(torch.randn(2, 5, 3, 3, dtype=D64), torch.randn(2, 5, dtype=D64))
    with pytest.raises(ValueError, match="s must be"):
        block(torch.randn(2, 6, 3, 3, dtype=D64), torch.randn(2, 4, dtype=D64))
