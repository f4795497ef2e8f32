"""Launch grids within CUDA's limits, 64-bit offsets, and autotuning that reuses its results.

CUDA allows grid x < 2**31 and y, z <= 65 535. The grid functions are checked on huge
shapes without launching anything; the 64-bit offsets by interpreter runs whose element
offsets pass 2**31 (int32 arithmetic would wrap to a negative address): a packed varlen
batch whose only sequence starts at row 2**27 of a (2**27 + 64, 1, 16) tensor, and a dense
view whose batch stride is 2**30. Those tensors are allocated with ``torch.empty`` (4 GiB of
address space each) and only their last rows are ever touched, so they cost a few pages.
"""

import pytest
import torch

from helpers.attention_inputs import dense_inputs
from tessera.kernels import _attention_triton as tri
from tessera.kernels import _chunked_linear_attention_triton as cla
from tessera.kernels import _deform_attn3d_triton as deform
from tessera.kernels import _scatter_linear_attention_triton as sla
from tessera.kernels import attention, varlen_attention

MAX_X, MAX_YZ = 2**31 - 1, 65_535
BH, N = 10**6, 10**7  # a million sequences; ten million positions

pytestmark = pytest.mark.filterwarnings(
    "ignore:Conversion of an array with ndim > 0:DeprecationWarning"
)


def _within_limits(grid):
    x, y, z = grid
    assert 1 <= x <= MAX_X and 1 <= y <= MAX_YZ and 1 <= z <= MAX_YZ, grid


@pytest.mark.parametrize(
    ("rows", "heads", "batch"),
    [(64, 8, BH // 8), (N, 8, 1), (N, 1, BH), (1, 8, BH)],  # last: DSVT pooling, 1 query/cell
    ids=["many-seqs", "long-seq", "both", "pooling"],
)
def test_attention_grid_stays_within_cuda_limits(rows, heads, batch):
    for block in (32, 64, 128):
        n_blocks = -(-rows // block)
        grid = tri.launch_grid(n_blocks, heads, batch)
        _within_limits(grid)
        tiles = n_blocks * heads * batch
        # One program per tile while they fit on x; past that the programs loop.
        assert grid[0] == min(tiles, MAX_X)


def test_other_kernels_grids_stay_within_cuda_limits():
    _within_limits(cla.launch_grid(BH, 1, 64, 64))
    _within_limits(cla.launch_grid(1, 8, 4096, 64))
    _within_limits(sla.launch_grid(N, 8))
    _within_limits(deform.launch_grid(BH // 8, 8, 32, 1))  # a million (batch, head) pairs
    _within_limits(deform.launch_grid(1, 8, 256, N))
    with pytest.raises(ValueError, match="grid x"):
        deform.launch_grid(BH, 8, 32, N)


@pytest.mark.kernels
def test_programs_loop_over_tiles_when_the_grid_is_capped(triton_backend, monkeypatch):
    """With grid x capped at 3 programs every program walks many tiles: same results."""
    q, k, v, g = dense_inputs(3, 2, 70, 40, 16, torch.float32, gate=True)
    out = attention(q, k, v, causal=True, gate=g)
    grads = torch.autograd.grad(out.sum(), (q, k, v, g))
    monkeypatch.setattr(tri, "MAX_GRID_X", 3)
    capped = attention(q, k, v, causal=True, gate=g)
    torch.testing.assert_close(capped, out, rtol=0, atol=0)
    for a, b in zip(torch.autograd.grad(capped.sum(), (q, k, v, g)), grads, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.kernels
def test_varlen_rows_past_2_31_elements(triton_backend):
    """Forward, preprocess, dK/dV and dQ address rows whose offsets exceed 2**31 elements."""
    rows, tail, d = 2**27 + 64, 64, 16  # row 2**27 starts at element 2**31
    big = [torch.empty(rows, 1, d, dtype=torch.float16) for _ in range(3)]
    small = [torch.randn(tail, 1, d).half() for _ in range(3)]
    for b, s in zip(big, small, strict=True):
        b[-tail:] = s
        b.requires_grad_()
    cu = torch.tensor([rows - tail, rows], dtype=torch.int32)  # one sequence, at the end
    out = varlen_attention(*big, cu, cu, tail, tail, causal=True)
    grad = torch.empty_like(out)
    grad[-tail:] = torch.randn(tail, 1, d).half()
    dq, dk, dv = torch.autograd.grad(out, big, grad)

    dense = [t.transpose(0, 1)[None].requires_grad_() for t in small]  # (1, 1, tail, d)
    ref = attention(*dense, causal=True)
    want = torch.autograd.grad(ref, dense, grad[-tail:].transpose(0, 1)[None])
    torch.testing.assert_close(out[-tail:], ref[0].transpose(0, 1), rtol=0, atol=0)
    for got, w in zip((dq, dk, dv), want, strict=True):
        torch.testing.assert_close(got[-tail:], w[0].transpose(0, 1), rtol=0, atol=0)


@pytest.mark.kernels
def test_batch_stride_past_2_31_elements(triton_backend):
    """A (3, 1, 16, 16) view with batch stride 2**30: batch 2 starts at element 2**31."""
    storage = torch.empty(2 * 2**30 + 256, dtype=torch.float16)
    q = storage.as_strided((3, 1, 16, 16), (2**30, 256, 16, 1))
    for b in range(3):
        q[b] = torch.randn(1, 16, 16).half()
    k, v = (torch.randn(3, 1, 16, 16).half() for _ in range(2))
    out = attention(q, k, v)
    torch.testing.assert_close(out, attention(q.contiguous(), k, v), rtol=0, atol=0)


def test_autotune_runs_once_per_length_bucket(monkeypatch):
    """A stream of 1000 distinct lengths triggers one tuning per power-of-two bucket; the
    flags that change the kernel (here causal) get their own tunings."""
    from triton.runtime.autotuner import Heuristics

    timings = []

    def fake_bench(kernel_call, quantiles):
        timings.append(kernel_call)
        return [1.0 + len(timings) % 3] * len(quantiles)

    monkeypatch.setattr(tri, "_use_autotune", lambda: True)
    monkeypatch.setattr(tri, "_DO_BENCH", fake_bench)
    monkeypatch.setattr(Heuristics, "run", lambda self, *args, **kwargs: None)  # no launch
    monkeypatch.setenv("TESSERA_KERNELS", "triton")
    tri._autotuned.cache_clear()
    n_configs = len(tri.configs_for("fwd", torch.float16))
    try:
        for n in range(1, 1001):
            q = torch.empty(1, 2, n, 64, dtype=torch.float16)
            tri.attention_triton(q, q, q, None, None, False, 0.125)
        tunings = len(timings) / n_configs
        assert tunings == 4  # buckets 128, 256, 512, 1024
        for n in (5, 300):
            q = torch.empty(1, 2, n, 64, dtype=torch.float16)
            tri.attention_triton(q, q, q, None, None, True, 0.125)
        assert len(timings) / n_configs == tunings + 2
    finally:
        tri._autotuned.cache_clear()


def test_tuning_key_buckets_lengths_and_keeps_flags():
    flags = {"CAUSAL": False, "HAS_MASK": False}
    assert tri.tuning_key(1, 100, 64, flags) == tri.tuning_key(128, 3, 64, flags)
    assert tri.tuning_key(129, 128, 64, flags) != tri.tuning_key(128, 128, 64, flags)
    assert tri.tuning_key(1000, 1000, 64, flags) == tri.tuning_key(513, 1024, 64, flags)
    assert tri.tuning_key(8, 8, 64, flags | {"CAUSAL": True}) != tri.tuning_key(8, 8, 64, flags)
    assert tri.tuning_key(8, 8, 128, flags) != tri.tuning_key(8, 8, 64, flags)


def test_fp32_dot_precision_follows_torch_tf32_flag():
    matmul = torch.backends.cuda.matmul
    before = matmul.allow_tf32
    try:
        matmul.allow_tf32 = True
        assert tri.dot_precision(torch.float32) == "tf32"
        matmul.allow_tf32 = False
        assert tri.dot_precision(torch.float32) == "ieee"
        assert tri.dot_precision(torch.float16) == "ieee"  # 16-bit dots use tensor cores
    finally:
        matmul.allow_tf32 = before
