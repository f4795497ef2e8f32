"""Public attention API and its exact PyTorch backend (CPU)."""

import importlib

import pytest
import torch
import torch.nn.functional as F

from helpers.attention_inputs import cu_seqlens, dense_inputs, key_mask
from tessera.kernels import attention, varlen_attention
from tessera.kernels.attention import ATTENTION, VARLEN_ATTENTION
from tessera.kernels.reference import attention_reference, varlen_attention_reference

# The package re-exports the function under the module's name; the module itself:
attn_mod = importlib.import_module("tessera.kernels.attention")

pytestmark = pytest.mark.usefixtures("torch_backend")


@pytest.mark.parametrize(
    ("nq", "nk", "mask", "causal", "gate"),
    [
        (3, 5, "none", False, False),
        (5, 3, "empty_batch", True, True),
        (4, 4, "prefix", True, False),
        (1, 6, "ragged", False, True),
    ],
)
def test_float64_gradcheck(nq, nk, mask, causal, gate):
    q, k, v, g = dense_inputs(2, 2, nq, nk, 4, torch.float64, gate=gate)
    m = key_mask(mask, 2, nk)

    def fn(q, k, v, *g):
        return attention(q, k, v, key_padding_mask=m, causal=causal, gate=g[0] if g else None)

    assert torch.autograd.gradcheck(fn, (q, k, v, *([g] if gate else [])))


@pytest.mark.parametrize("causal", [False, True])
def test_varlen_float64_gradcheck(causal):
    cu_q, cu_k = cu_seqlens([2, 1, 3]), cu_seqlens([3, 2, 1])
    q = torch.randn(6, 2, 4, dtype=torch.float64, requires_grad=True)
    k = torch.randn(6, 2, 4, dtype=torch.float64, requires_grad=True)
    v = torch.randn(6, 2, 4, dtype=torch.float64, requires_grad=True)
    fn = lambda q, k, v: varlen_attention(q, k, v, cu_q, cu_k, 3, 3, causal=causal)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (q, k, v))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("case", ["plain", "causal", "mask"])
def test_equals_sdpa_where_sdpa_applies(case, dtype):
    q, k, v, _ = dense_inputs(2, 4, 37, 37, 32, dtype, gate=False)
    mask = key_mask("ragged", 2, 37) if case == "mask" else None
    out = attention(q, k, v, key_padding_mask=mask, causal=case == "causal")
    sdpa_mask = mask[:, None, None, :] if mask is not None else None
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=sdpa_mask, is_causal=case == "causal")
    assert out.dtype == dtype
    torch.testing.assert_close(out, ref, rtol=0, atol=0)


@pytest.mark.parametrize("nq,nk", [(7, 33), (33, 7), (65, 65), (1, 1)])
@pytest.mark.parametrize("mask", ["none", "ragged", "empty_batch", "prefix"])
def test_matches_fp64_reference_forward_and_backward(nq, nk, mask):
    q, k, v, g = dense_inputs(2, 2, nq, nk, 16, torch.float64, gate=True)
    m = key_mask(mask, 2, nk)
    out = attention(q, k, v, key_padding_mask=m, causal=True, gate=g)
    ref = attention_reference(q, k, v, key_padding_mask=m, causal=True, gate=g)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, (q, k, v, g), grad)
    want = torch.autograd.grad(ref, (q, k, v, g), grad)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_fully_masked_rows_are_zero_with_zero_gradients():
    # Batch 1 sees no key; with causal Nq > Nk the first Nq - Nk rows of batch 0 see none.
    q, k, v, g = dense_inputs(2, 2, 9, 4, 8, torch.float32, gate=True)
    mask = key_mask("empty_batch", 2, 4)
    out = attention(q, k, v, key_padding_mask=mask, causal=True, gate=g)
    out.backward(torch.randn_like(out))
    empty = torch.zeros(2, 9, dtype=torch.bool)
    empty[1] = True
    empty[0, :5] = True
    assert torch.all(out[empty[:, None, :].expand(2, 2, 9)] == 0)
    for t in (q, g):
        assert torch.isfinite(t.grad).all()
        assert torch.all(t.grad[empty[:, None, :].expand(2, 2, 9)] == 0)
    assert torch.all(k.grad[1] == 0) and torch.all(v.grad[1] == 0)
    assert torch.isfinite(k.grad).all() and torch.isfinite(v.grad).all()


def test_query_chunking_is_exact_and_skips_invisible_keys(monkeypatch):
    monkeypatch.setattr(attn_mod, "_MASK_CHUNK_ELEMENTS", 2 * 40)  # 1 query row per chunk
    q, k, v, _ = dense_inputs(2, 2, 50, 40, 8, torch.float64, gate=False)
    m = key_mask("prefix", 2, 40)
    out = attention(q, k, v, key_padding_mask=m, causal=True)
    ref = attention_reference(q, k, v, key_padding_mask=m, causal=True)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)


def test_masked_causal_memory_is_linear_in_n(monkeypatch):
    """No (Nq, Nk) buffer: every mask handed to SDPA stays within the chunk budget."""
    largest = []
    sdpa = F.scaled_dot_product_attention

    def recording_sdpa(*args, attn_mask=None, **kwargs):
        largest.append(0 if attn_mask is None else attn_mask.numel())
        return sdpa(*args, attn_mask=attn_mask, **kwargs)

    monkeypatch.setattr(attn_mod.F, "scaled_dot_product_attention", recording_sdpa)
    nq, nk = 4096, 4000
    q, k, v = (torch.randn(1, 1, n, 8) for n in (nq, nk, nk))
    mask = torch.ones(1, nk, dtype=torch.bool)
    attention(q, k, v, key_padding_mask=mask, causal=True)
    assert len(largest) > 1
    assert max(largest) <= attn_mod._MASK_CHUNK_ELEMENTS < nq * nk


@pytest.mark.parametrize("causal", [False, True])
def test_varlen_equals_per_sequence_dense(causal):
    lens_q, lens_k = [5, 1, 9, 3], [4, 1, 9, 6]
    cu_q, cu_k = cu_seqlens(lens_q), cu_seqlens(lens_k)
    q = torch.randn(sum(lens_q), 3, 16, dtype=torch.float64)
    k = torch.randn(sum(lens_k), 3, 16, dtype=torch.float64)
    v = torch.randn(sum(lens_k), 3, 16, dtype=torch.float64)
    out = varlen_attention(q, k, v, cu_q, cu_k, max(lens_q), max(lens_k), causal=causal)
    dense = []
    for b in range(len(lens_q)):
        qs, ks, vs = (
            t[cu[b] : cu[b + 1]].transpose(0, 1)[None]
            for t, cu in ((q, cu_q), (k, cu_k), (v, cu_k))
        )
        dense.append(attention(qs, ks, vs, causal=causal)[0].transpose(0, 1))
    torch.testing.assert_close(out, torch.cat(dense), rtol=0, atol=1e-12)
    ref = varlen_attention_reference(q, k, v, cu_q, cu_k, causal=causal)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)


def test_output_keeps_input_dtype_and_scale_is_used():
    q, k, v, _ = dense_inputs(1, 2, 5, 6, 8, torch.float64, gate=False)
    out = attention(q, k, v, scale=0.3)
    torch.testing.assert_close(out, attention_reference(q, k, v, scale=0.3), rtol=0, atol=1e-12)
    for dtype in (torch.float16, torch.bfloat16):
        assert attention(q.to(dtype), k.to(dtype), v.to(dtype)).dtype == dtype


def test_cpu_tensors_choose_the_torch_backend(monkeypatch):
    monkeypatch.delenv("TESSERA_KERNELS")
    q, k, v, _ = dense_inputs(1, 1, 4, 4, 16, torch.float32, gate=False)
    assert ATTENTION.select(q, k, v, None, None, False, 0.25)[0] == "torch"
    cu = cu_seqlens([4])
    assert VARLEN_ATTENTION.select(q[0], k[0], v[0], cu, cu, 4, 4, False, 0.25)[0] == "torch"


def test_forced_triton_refuses_what_it_cannot_run(monkeypatch):
    monkeypatch.setenv("TESSERA_KERNELS", "triton")
    q, k, v, _ = dense_inputs(1, 1, 4, 4, 256, torch.float32, gate=False)
    with pytest.raises(RuntimeError, match="head dim 256 > 128"):
        attention(q, k, v)
    q, k, v, _ = dense_inputs(1, 1, 4, 4, 16, torch.float64, gate=False)
    with pytest.raises(RuntimeError, match="float64"):
        attention(q, k, v)


def _bad_dense_calls():
    q, k = torch.randn(2, 2, 5, 8), torch.randn(2, 2, 6, 8)
    k3, k4 = torch.randn(2, 3, 6, 8), torch.randn(2, 2, 6, 4)
    return [
        ("q must be a 4-D", lambda: attention(q[0], k, k)),
        ("head dim", lambda: attention(q, k4, k4)),
        ("k .* and v", lambda: attention(q, k, torch.randn(2, 2, 7, 8))),
        ("share \\(B, H\\)", lambda: attention(q, k3, k3)),
        ("v has torch.float64", lambda: attention(q, k, k.double())),
        ("key_padding_mask must be bool", lambda: attention(q, k, k, key_padding_mask=k[0, 0])),
        (
            "key_padding_mask must be bool",
            lambda: attention(q, k, k, key_padding_mask=k[:1, 0, :, 0] > 0),
        ),
        ("gate must match q", lambda: attention(q, k, k, gate=q[..., :4])),
        ("Nq >= 1", lambda: attention(q[:, :, :0], k, k)),
    ]


@pytest.mark.parametrize("i", range(len(_bad_dense_calls())))
def test_invalid_dense_inputs_raise_value_error(i):
    match, call = _bad_dense_calls()[i]
    with pytest.raises(ValueError, match=match):
        call()


def test_invalid_varlen_inputs_raise_value_error():
    q = torch.randn(6, 2, 8)
    cu = cu_seqlens([2, 4])
    with pytest.raises(ValueError, match="cu_seqlens_q must be int32"):
        varlen_attention(q, q, q, cu.long(), cu, 4, 4)
    with pytest.raises(ValueError, match="same number of sequences"):
        varlen_attention(q, q, q, cu, cu_seqlens([6]), 4, 6)
    with pytest.raises(ValueError, match="max_seqlen_k must be a positive int"):
        varlen_attention(q, q, q, cu, cu, 4, 0)
    with pytest.raises(ValueError, match="same number of heads"):
        varlen_attention(q, torch.randn(6, 3, 8), torch.randn(6, 3, 8), cu, cu, 4, 4)


def test_torch_compile_fullgraph_matches_eager():
    q, k, v, g = dense_inputs(2, 2, 9, 12, 16, torch.float32, gate=True)
    mask = key_mask("ragged", 2, 12)

    def block(q, k, v, g):
        return attention(q, k, v, key_padding_mask=mask, causal=True, gate=g) * 2

    eager = block(q, k, v, g)
    eager_grads = torch.autograd.grad(eager.sum(), (q, k, v, g))
    compiled = torch.compile(block, fullgraph=True)(q, k, v, g)
    grads = torch.autograd.grad(compiled.sum(), (q, k, v, g))
    torch.testing.assert_close(compiled, eager)
    for a, b in zip(grads, eager_grads, strict=True):
        torch.testing.assert_close(a, b)


def test_backward_is_run_to_run_identical():
    q, k, v, g = dense_inputs(2, 4, 300, 200, 64, torch.float32, gate=True)
    mask = key_mask("ragged", 2, 200)
    grad = torch.randn(q.shape)

    def grads():
        out = attention(q, k, v, key_padding_mask=mask, causal=True, gate=g)
        return torch.autograd.grad(out, (q, k, v, g), grad)

    for a, b in zip(grads(), grads(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.filterwarnings("ignore:Conversion of an array with ndim > 0:DeprecationWarning")
@pytest.mark.parametrize("backend", ["torch", pytest.param("triton", marks=pytest.mark.kernels)])
def test_varlen_empty_sequences_give_zeros_and_zero_gradients(backend, monkeypatch):
    monkeypatch.setenv("TESSERA_KERNELS", backend)
    lens_q, lens_k = [3, 0, 2, 4], [2, 3, 0, 5]  # no queries / no keys in sequences 1 / 2
    cu_q, cu_k = cu_seqlens(lens_q), cu_seqlens(lens_k)
    q = torch.randn(sum(lens_q), 2, 16, requires_grad=True)
    k = torch.randn(sum(lens_k), 2, 16, requires_grad=True)
    v = torch.randn(sum(lens_k), 2, 16, requires_grad=True)
    out = varlen_attention(q, k, v, cu_q, cu_k, 4, 5, causal=True)
    ref = varlen_attention_reference(q, k, v, cu_q, cu_k, causal=True)
    torch.testing.assert_close(out.double(), ref, rtol=0, atol=1e-5)
    out.backward(torch.randn_like(out))
    assert torch.all(out[3:5] == 0) and torch.all(q.grad[3:5] == 0)
    assert torch.all(k.grad[2:5] == 0) and torch.all(v.grad[2:5] == 0)
    assert all(torch.isfinite(t.grad).all() for t in (q, k, v))
