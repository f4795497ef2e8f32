"""Triton FlashAttention-2 kernels against the fp64 reference (interpreter on CPU).

Criterion (flash-attn's test): error of the kernel <= 2x the error of plain PyTorch in the
same precision, plus an absolute floor, for the output and every gradient. The shape grid
is a hand-picked covering design rather than the full product (the interpreter is slow):
every length in {1, 7, 33, 65} as Nq and as Nk, Nq != Nk both ways, D in {16, 40, 64}, every
mask kind (including fully masked rows) with and without causal and gate, fp32 and fp16.
"""

import pytest
import torch

from helpers.attention_inputs import (
    assert_within_plain_error,
    cu_seqlens,
    dense_inputs,
    key_mask,
)
from tessera.kernels import attention, varlen_attention
from tessera.kernels._attention_triton import flash_attention_fwd
from tessera.kernels.reference import attention_reference, varlen_attention_reference

pytestmark = [
    pytest.mark.kernels,
    pytest.mark.usefixtures("triton_backend"),
    # triton 3.6's interpreter with numpy 2.3 on loops with a runtime bound (triton#9171).
    pytest.mark.filterwarnings("ignore:Conversion of an array with ndim > 0:DeprecationWarning"),
]

F32, F16 = torch.float32, torch.float16
GRID = [  # (Nq, Nk, D, mask, causal, gate, dtype)
    (1, 1, 16, "none", False, False, F32),
    (7, 33, 16, "ragged", True, True, F32),
    (33, 7, 40, "empty_batch", True, False, F32),
    (65, 65, 64, "prefix", True, True, F32),
    (65, 33, 40, "ragged", False, True, F32),
    (7, 7, 64, "none", True, False, F32),
    (1, 65, 40, "prefix", False, False, F32),
    (65, 7, 16, "none", False, True, F16),
    (7, 65, 40, "none", True, False, F16),
    (33, 33, 64, "ragged", False, False, F16),
    (1, 33, 64, "empty_batch", False, True, F16),
    (33, 1, 16, "prefix", True, True, F16),
]


@pytest.mark.parametrize(("nq", "nk", "d", "mask", "causal", "gate", "dtype"), GRID)
def test_forward_backward_vs_fp64_reference(nq, nk, d, mask, causal, gate, dtype):
    q, k, v, g = dense_inputs(2, 2, nq, nk, d, dtype, gate=gate)
    m = key_mask(mask, 2, nk)
    inputs = (q, k, v, *([g] if gate else []))
    kwargs = dict(key_padding_mask=m, causal=causal, gate=g)

    out = attention(q, k, v, **kwargs)
    assert out.dtype == dtype
    ref = attention_reference(q, k, v, **kwargs)
    plain = attention_reference(q, k, v, upcast=False, **kwargs)
    assert_within_plain_error("out", out, plain, ref, dtype)

    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, inputs, grad)
    want = torch.autograd.grad(ref, inputs, grad.double())
    base = torch.autograd.grad(plain, inputs, grad)
    for name, a, b, c in zip(["q", "k", "v", "gate"], got, want, base, strict=False):
        assert a.dtype == dtype
        assert_within_plain_error(f"d{name}", a, c, b, dtype)


@pytest.mark.parametrize("dtype", [F32, F16])
def test_fully_masked_rows_give_zeros_and_zero_gradients(dtype):
    q, k, v, g = dense_inputs(2, 2, 40, 7, 16, dtype, gate=True)
    out = attention(q, k, v, key_padding_mask=key_mask("empty_batch", 2, 7), causal=True, gate=g)
    out.backward(torch.randn_like(out))
    # Batch 1 has no key; causal with Nq - Nk = 33 hides every key from rows 0..32.
    assert torch.all(out[1] == 0) and torch.all(out[0, :, :33] == 0)
    for t in (q, k, v, g):
        assert torch.isfinite(t.grad).all()
    assert torch.all(q.grad[1] == 0) and torch.all(q.grad[0, :, :33] == 0)
    assert torch.all(g.grad[1] == 0) and torch.all(k.grad[1] == 0) and torch.all(v.grad[1] == 0)


@pytest.mark.parametrize(("causal", "dtype"), [(False, F32), (True, F32), (True, F16)])
def test_varlen_equals_per_sequence_dense_and_reference(causal, dtype):
    lens_q, lens_k = [1, 40, 7, 1], [5, 33, 1, 1]  # length-1 sequences, Nq != Nk
    cu_q, cu_k = cu_seqlens(lens_q), cu_seqlens(lens_k)
    q = torch.randn(sum(lens_q), 2, 40).to(dtype).requires_grad_()
    k = torch.randn(sum(lens_k), 2, 40).to(dtype).requires_grad_()
    v = torch.randn(sum(lens_k), 2, 40).to(dtype).requires_grad_()
    out = varlen_attention(q, k, v, cu_q, cu_k, max(lens_q), max(lens_k), causal=causal)

    dense = []
    for b in range(len(lens_q)):
        qs, ks, vs = (
            t[cu[b] : cu[b + 1]].transpose(0, 1)[None]
            for t, cu in ((q, cu_q), (k, cu_k), (v, cu_k))
        )
        dense.append(attention(qs, ks, vs, causal=causal)[0].transpose(0, 1))
    torch.testing.assert_close(out, torch.cat(dense), rtol=0, atol=0)

    ref = varlen_attention_reference(q, k, v, cu_q, cu_k, causal=causal)
    plain = varlen_attention_reference(q, k, v, cu_q, cu_k, causal=causal, upcast=False)
    assert_within_plain_error("out", out, plain, ref, dtype)
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, (q, k, v), grad)
    want = torch.autograd.grad(ref, (q, k, v), grad.double())
    base = torch.autograd.grad(plain, (q, k, v), grad)
    for name, a, b, c in zip("qkv", got, want, base, strict=True):
        assert_within_plain_error(f"d{name}", a, c, b, dtype)


def test_non_contiguous_inputs_from_a_bnhd_layout():
    x = torch.randn(3, 2, 21, 2, 3, 16)  # (qkv, B, N, H, ...) sliced to (B, H, N, D) views
    q, k, v = (x[i].flatten(-2)[..., :40].transpose(1, 2).requires_grad_() for i in range(3))
    out = attention(q, k, v, causal=True)
    ref = attention_reference(q, k, v, causal=True)
    torch.testing.assert_close(out.double(), ref, rtol=0, atol=1e-5)
    grad = torch.randn(out.shape).transpose(1, 2).contiguous().transpose(1, 2)
    got = torch.autograd.grad(out, (q, k, v), grad)
    want = torch.autograd.grad(ref, (q, k, v), grad.double())
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_custom_op_registration_passes_opcheck():
    q, k, v, g = dense_inputs(1, 2, 9, 17, 16, F32, gate=True)
    mask = key_mask("ragged", 1, 17)
    torch.library.opcheck(
        flash_attention_fwd,
        (q, k, v, mask, g, None, None, 9, 17, True, 0.25),
        test_utils=("test_schema", "test_faketensor", "test_autograd_registration"),
    )


def test_torch_compile_fullgraph_through_the_custom_ops_matches_eager():
    q, k, v, g = dense_inputs(1, 2, 9, 17, 16, F32, gate=True)

    def block(q, k, v, g):
        return attention(q, k, v, causal=True, gate=g) * 2

    eager = block(q, k, v, g)
    eager_grads = torch.autograd.grad(eager.sum(), (q, k, v, g))
    compiled = torch.compile(block, fullgraph=True, backend="aot_eager")(q, k, v, g)
    grads = torch.autograd.grad(compiled.sum(), (q, k, v, g))
    torch.testing.assert_close(compiled, eager, rtol=0, atol=0)
    for a, b in zip(grads, eager_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_bf16_is_refused_in_the_interpreter_with_the_reason():
    q, k, v, _ = dense_inputs(1, 1, 4, 4, 16, torch.bfloat16, gate=False)
    with pytest.raises(RuntimeError, match="bf16 tl.dot is wrong in the Triton interpreter"):
        attention(q, k, v)
