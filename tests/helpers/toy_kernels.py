"""Two minimal Triton kernels used to test the compile checker."""

import triton
import triton.language as tl


@triton.jit
def tile_matmul(a, b, c, M: tl.constexpr, N: tl.constexpr, K: tl.constexpr):
    rm, rn, rk = tl.arange(0, M), tl.arange(0, N), tl.arange(0, K)
    x = tl.load(a + rm[:, None] * K + rk[None, :])
    y = tl.load(b + rk[:, None] * N + rn[None, :])
    tl.store(c + rm[:, None] * N + rn[None, :], tl.dot(x, y))


@triton.jit
def tile_add(a, b, c, M: tl.constexpr, N: tl.constexpr, K: tl.constexpr):
    rm, rn = tl.arange(0, M), tl.arange(0, N)
    x = tl.load(a + rm[:, None] * N + rn[None, :])
    y = tl.load(b + rm[:, None] * N + rn[None, :])
    tl.store(c + rm[:, None] * N + rn[None, :], (x + y).to(tl.float32))
