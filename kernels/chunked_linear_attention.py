"""Linear attention over a whole sequence, computed block by block.

MossFormer's global linear attention term (Zhao et al., ICASSP 2023, arXiv:2302.11824), with the
causal case tiled like Lightning Attention-2 (Qin et al., 2024, arXiv:2401.04658): within a block
of ``C`` positions the masked product (q k^T * tril) v is quadratic in C, across blocks a running
state sum k^T v carries the prefix, so memory stays O(N * D + D * Dv) per (batch, head):

    out_i = q_i (sum_{j in J(i)} k_j^T v_j) / N,   J(i) = all j (non-causal) or j <= i (causal)

No feature map is applied inside; callers apply theirs. Shapes: q, k (B, H, N, D);
v (B, H, N, Dv); output (B, H, N, Dv).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tessera.kernels.dispatch import TRITON_AVAILABLE, KernelOp

if TRITON_AVAILABLE:
    from tessera.kernels import _chunked_linear_attention_triton as _triton

CHUNKED_LINEAR_ATTENTION = KernelOp("chunked_linear_attention")
# Block length of the PyTorch causal path; >= D keeps the per-block states within O(N * Dv).
TORCH_BLOCK = 128


def _check_inputs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    if q.dim() != 4:
        raise ValueError(f"q must be (B, H, N, D), got shape {tuple(q.shape)}")
    if k.shape != q.shape:
        raise ValueError(f"k must match q {tuple(q.shape)}, got shape {tuple(k.shape)}")
    if v.dim() != 4 or v.shape[:3] != q.shape[:3]:
        raise ValueError(f"v must be (B, H, N, Dv) with B, H, N of q, got shape {tuple(v.shape)}")
    if not (q.dtype == k.dtype == v.dtype) or not q.is_floating_point():
        raise ValueError(f"q, k, v must share a float dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if q.shape[2] == 0:
        raise ValueError("q must have at least one position (N > 0)")


@CHUNKED_LINEAR_ATTENTION.register("torch")
def chunked_linear_attention_torch(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool
) -> torch.Tensor:
    """Exact PyTorch path; the causal case is block-tiled and fully vectorised over blocks.

    fp16/bf16 inputs are computed in fp32 (state, 1/N scaling and products; autograd
    follows), and only the output is cast back: in half precision sum k^T v overflows.
    """
    if q.dtype in (torch.float16, torch.bfloat16):
        out = chunked_linear_attention_torch(q.float(), k.float(), v.float(), causal=causal)
        return out.to(q.dtype)
    n = q.shape[2]
    if not causal:
        # 1/N on the (D, Dv) state, not on the (N, Dv) output: one pass over N fewer.
        return q @ (k.transpose(-1, -2) @ v / n)
    b, h = q.shape[:2]
    dv = v.shape[-1]
    c = min(TORCH_BLOCK, n)
    nb = -(-n // c)
    pad = nb * c - n  # zero rows add nothing to the state and their outputs are dropped
    qb, kb, vb = (F.pad(t, (0, 0, 0, pad)).view(b, h, nb, c, -1) for t in (q, k, v))
    # Running state before each block: exclusive prefix sum of per-block k^T v.
    block_kv = kb.transpose(-1, -2) @ vb  # (B, H, nb, D, Dv)
    state = F.pad(torch.cumsum(block_kv, dim=2)[:, :, :-1], (0, 0, 0, 0, 1, 0))
    inter = qb @ state  # (B, H, nb, C, Dv)
    causal_mask = torch.ones(c, c, dtype=torch.bool, device=q.device).tril()
    scores = (qb @ kb.transpose(-1, -2)).masked_fill(~causal_mask, 0)  # (B, H, nb, C, C)
    out = (inter + scores @ vb).view(b, h, nb * c, dv)[:, :, :n]
    return out / n


if TRITON_AVAILABLE:
    CHUNKED_LINEAR_ATTENTION.register("triton", *_triton.CONSTRAINTS)(
        _triton.chunked_linear_attention_triton
    )


def chunked_linear_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool
) -> torch.Tensor:
    """Global (optionally causal) linear attention normalised by the sequence length.

    Args:
        q: (B, H, N, D) queries, feature map already applied.
        k: (B, H, N, D) keys, feature map already applied.
        v: (B, H, N, Dv) values.
        causal: if True position i only sums over j <= i.

    Returns:
        (B, H, N, Dv) ``q_i (sum_j k_j^T v_j) / N``.

    Raises:
        ValueError: on inconsistent shapes or dtypes.
    """
    _check_inputs(q, k, v)
    return CHUNKED_LINEAR_ATTENTION(q, k, v, causal=causal)
