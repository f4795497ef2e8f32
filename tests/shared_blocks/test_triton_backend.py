"""Blocks give the same result on the Triton kernels (the interpreter on CPU) as on the exact
PyTorch kernels: the blocks pass layouts and arguments the Triton path accepts."""

import pytest
import torch

from tessera.shared_blocks import BLOCKS

# One small case per kernel-backed block: (kwargs, inputs). fp32; the interpreter is slow.
CASES = {
    "GatedMultiheadAttention": (
        dict(dim=32, heads=2),
        lambda: ((torch.randn(2, 5, 32),), {"key_padding_mask": torch.rand(2, 5) > 0.2}),
    ),
    "CrossAttention": (
        dict(dim=32, context_dim=16, heads=2),
        lambda: ((torch.randn(1, 5, 32), torch.randn(1, 7, 16)), {}),
    ),
    "JointCrossAttention": (
        dict(dim=32, context_dim=16, heads=2, dim_head=16),
        lambda: ((torch.randn(1, 5, 32), torch.randn(1, 4, 16)), {}),
    ),
    "TextConditionedPooling": (
        dict(dim=32, heads=2, text_chunk_size=2),
        lambda: ((torch.randn(3, 32), torch.randn(2, 4, 32)), {}),
    ),
    "CrossViTFusion": (
        dict(dim=32, heads=2),
        lambda: ((torch.randn(1, 3, 32), torch.randn(1, 4, 32)), {}),
    ),
    "AxialAttention": (dict(dim=32, heads=2), lambda: ((torch.randn(1, 32, 3, 4),), {})),
    "JointAttention": (
        dict(dim=16, group_size=4, query_key_dim=16, causal=True, dropout=0.0),
        lambda: ((torch.randn(1, 10, 16),), {}),
    ),
    "DeformableAttention3D": (
        dict(dim=16, heads=2, points=2),
        lambda: (
            (
                torch.randn(1, 3, 16),
                torch.rand(1, 3, 3),
                torch.randn(1, 24, 16),
                torch.tensor([[2, 3, 4]]),
                torch.tensor([0]),
            ),
            {},
        ),
    ),
}


@pytest.mark.kernels
@pytest.mark.parametrize("name", sorted(CASES))
def test_triton_backend_matches_torch_backend(name, monkeypatch):
    kwargs, make_inputs = CASES[name]
    block = BLOCKS.build(dict(type=name, **kwargs)).eval()
    with torch.no_grad():
        for p in block.parameters():
            p.add_(0.1 * torch.randn_like(p))
    args, kw = make_inputs()
    monkeypatch.setenv("TESSERA_KERNELS", "torch")
    want = block(*args, **kw)
    monkeypatch.setenv("TESSERA_KERNELS", "triton")
    got = block(*args, **kw)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
