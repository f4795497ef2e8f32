"""Fused scaled dot-product attention: dense (masked, causal, gated) and variable-length.

One public API over two backends registered in :mod:`tessera.kernels.dispatch`:

* ``triton``: FlashAttention-2 (Dao, 2023, arXiv:2307.08691) forward and backward, see
  :mod:`tessera.kernels._attention_triton`; chosen automatically for CUDA tensors.
* ``torch``: exact PyTorch built on ``F.scaled_dot_product_attention``; the reference and the
  CPU path. Masked and bottom-right causal calls are chunked over queries so memory stays
  linear in the sequence length.

Semantics shared by both backends:

* ``key_padding_mask`` is bool ``(B, Nk)`` with True = attend (SDPA convention).
* ``causal`` aligns to the bottom-right corner as flash-attn does: query ``i`` sees key ``j``
  iff ``j <= i + Nk - Nq``.
* A query row with no visible key returns zeros and receives zero gradients, never NaN.
* ``gate`` implements Gated Attention (Qiu et al., 2025, arXiv:2505.06708): the output is
  ``attn_out * sigmoid(gate)`` with a head-specific, elementwise gate ``(B, H, Nq, D)``.
* Computation accumulates in fp32 (or fp64 for fp64 inputs); the output has the input dtype.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tessera.kernels.dispatch import TRITON_AVAILABLE, KernelOp

ATTENTION = KernelOp("attention")
VARLEN_ATTENTION = KernelOp("varlen_attention")

# Largest boolean mask chunk (elements, summed over the batch) the torch path materialises
# for masked causal attention; chunking over queries keeps memory linear in N.
_MASK_CHUNK_ELEMENTS = 1 << 23


def _shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def _check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, ndim: int, layout: str) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor) or t.dim() != ndim:
            raise ValueError(f"{name} must be a {ndim}-D tensor {layout}, got {_shape(t)}")
        if not t.is_floating_point():
            raise ValueError(f"{name} must be floating point, got {t.dtype}")
        if t.dtype != q.dtype or t.device != q.device:
            raise ValueError(
                f"{name} has {t.dtype} on {t.device}, expected q's {q.dtype} on {q.device}"
            )
    if k.shape != v.shape:
        raise ValueError(f"k {_shape(k)} and v {_shape(v)} must have the same shape")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q head dim {q.shape[-1]} != k head dim {k.shape[-1]}")
    if q.shape[-1] < 1:
        raise ValueError("head dim must be >= 1")


def _check_dense(q, k, v, key_padding_mask, gate) -> None:
    _check_qkv(q, k, v, 4, "(B, H, N, D)")
    if q.shape[:2] != k.shape[:2]:
        raise ValueError(f"q {_shape(q)} and k {_shape(k)} must share (B, H)")
    if q.shape[2] < 1 or k.shape[2] < 1:
        raise ValueError(f"need Nq >= 1 and Nk >= 1, got Nq={q.shape[2]}, Nk={k.shape[2]}")
    if key_padding_mask is not None:
        b, nk = k.shape[0], k.shape[2]
        if key_padding_mask.dtype != torch.bool or key_padding_mask.shape != (b, nk):
            raise ValueError(
                f"key_padding_mask must be bool ({b}, {nk}), got "
                f"{key_padding_mask.dtype} {_shape(key_padding_mask)}"
            )
        if key_padding_mask.device != q.device:
            raise ValueError(f"key_padding_mask is on {key_padding_mask.device}, q on {q.device}")
    if gate is not None and (
        gate.shape != q.shape or gate.dtype != q.dtype or gate.device != q.device
    ):
        raise ValueError(
            f"gate must match q ({_shape(q)}, {q.dtype}, {q.device}), got "
            f"({_shape(gate)}, {gate.dtype}, {gate.device})"
        )


def _check_varlen(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k) -> None:
    _check_qkv(q, k, v, 3, "(total, H, D)")
    if q.shape[1] != k.shape[1]:
        raise ValueError(f"q {_shape(q)} and k {_shape(k)} must have the same number of heads")
    for name, cu in (("cu_seqlens_q", cu_seqlens_q), ("cu_seqlens_k", cu_seqlens_k)):
        if cu.dtype != torch.int32 or cu.dim() != 1 or cu.shape[0] < 2:
            raise ValueError(f"{name} must be int32 (B + 1,), got {cu.dtype} {_shape(cu)}")
        if cu.device != q.device:
            raise ValueError(f"{name} is on {cu.device}, q on {q.device}")
    if cu_seqlens_q.shape != cu_seqlens_k.shape:
        raise ValueError(
            f"cu_seqlens_q {_shape(cu_seqlens_q)} and cu_seqlens_k {_shape(cu_seqlens_k)} "
            "must describe the same number of sequences"
        )
    for name, m in (("max_seqlen_q", max_seqlen_q), ("max_seqlen_k", max_seqlen_k)):
        if not isinstance(m, int) or m < 1:
            raise ValueError(f"{name} must be a positive int, got {m!r}")


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    key_padding_mask: torch.Tensor | None = None,
    causal: bool = False,
    gate: torch.Tensor | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    """Scaled dot-product attention, optionally masked, causal and gated.

    Args:
        q: (B, H, Nq, D) queries.
        k: (B, H, Nk, D) keys.
        v: (B, H, Nk, D) values.
        key_padding_mask: bool (B, Nk), True = attend.
        causal: bottom-right aligned causal mask (query i sees keys j <= i + Nk - Nq).
        gate: (B, H, Nq, D); returns ``attn_out * sigmoid(gate)`` (Gated Attention).
        scale: score scale, default ``D ** -0.5``.

    Returns:
        (B, H, Nq, D) in the dtype of ``q``; rows without a visible key are zero.
    """
    _check_dense(q, k, v, key_padding_mask, gate)
    scale = q.shape[-1] ** -0.5 if scale is None else float(scale)
    return ATTENTION(q, k, v, key_padding_mask, gate, bool(causal), scale)


def varlen_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_seqlens_q: torch.Tensor,
    cu_seqlens_k: torch.Tensor,
    max_seqlen_q: int,
    max_seqlen_k: int,
    *,
    causal: bool = False,
    scale: float | None = None,
) -> torch.Tensor:
    """Attention over a packed batch of variable-length sequences (flash-attn varlen API).

    Sequence ``b`` owns query rows ``cu_seqlens_q[b]:cu_seqlens_q[b + 1]`` and key rows
    ``cu_seqlens_k[b]:cu_seqlens_k[b + 1]``; it attends only within itself. Compute
    ``cu_seqlens`` and the maxima outside compiled regions (they are data-dependent).

    Args:
        q: (total_q, H, D) packed queries.
        k: (total_k, H, D) packed keys.
        v: (total_k, H, D) packed values.
        cu_seqlens_q: int32 (B + 1,), cumulative query lengths starting at 0.
        cu_seqlens_k: int32 (B + 1,), cumulative key lengths starting at 0.
        max_seqlen_q: longest query sequence.
        max_seqlen_k: longest key sequence.
        causal: bottom-right aligned causal mask within each sequence.
        scale: score scale, default ``D ** -0.5``.

    Returns:
        (total_q, H, D) in the dtype of ``q``.
    """
    _check_varlen(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k)
    scale = q.shape[-1] ** -0.5 if scale is None else float(scale)
    return VARLEN_ATTENTION(
        q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, bool(causal), scale
    )


# ----------------------------------------------------------------------------- torch backend


def _sdpa_masked(q, k, v, key_valid, causal_offset, scale) -> torch.Tensor:
    """SDPA with a key mask and an optional per-batch bottom-right causal offset.

    Args:
        q: (B, H, Nq, D).
        k: (B, H, Nk, D).
        v: (B, H, Nk, D).
        key_valid: bool (B, Nk) or None.
        causal_offset: None (not causal), an int, or an int tensor (B,): query i sees key j
            iff j <= i + offset.
        scale: score scale.

    Returns:
        (B, H, Nq, D); rows with no visible key are zero.
    """
    b, nq, nk = q.shape[0], q.shape[2], k.shape[2]
    if causal_offset is None:  # the mask broadcasts over queries: SDPA stays linear in memory
        has_key = key_valid.any(-1)  # (B,)
        mask = (key_valid | ~has_key[:, None])[:, None, None, :]  # (B, 1, 1, Nk)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
        return out * has_key.view(b, 1, 1, 1).to(out.dtype)

    offset = causal_offset if isinstance(causal_offset, int) else causal_offset.view(b, 1, 1, 1)
    chunk = max(1, _MASK_CHUNK_ELEMENTS // (b * nk))
    outs = []
    for start in range(0, nq, chunk):
        end = min(nq, start + chunk)
        # Keys past the last one this chunk can see are skipped (about half the work).
        n_keys = min(nk, end + causal_offset) if isinstance(causal_offset, int) else nk
        if n_keys <= 0:
            outs.append(q.new_zeros(b, q.shape[1], end - start, q.shape[3]))
            continue
        rows = torch.arange(start, end, device=q.device).view(1, 1, -1, 1)
        cols = torch.arange(n_keys, device=q.device).view(1, 1, 1, -1)
        mask = cols <= rows + offset  # (1 or B, 1, chunk, n_keys)
        if key_valid is not None:
            mask = mask & key_valid[:, None, None, :n_keys]
        has_key = mask.any(-1, keepdim=True)
        out = F.scaled_dot_product_attention(
            q[:, :, start:end],
            k[:, :, :n_keys],
            v[:, :, :n_keys],
            attn_mask=mask | ~has_key,
            scale=scale,
        )
        outs.append(out * has_key.to(out.dtype))
    return outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)


@ATTENTION.register("torch")
def attention_torch(q, k, v, key_padding_mask, gate, causal, scale) -> torch.Tensor:
    """Exact PyTorch backend of :func:`attention` (same positional arguments)."""
    nq, nk = q.shape[2], k.shape[2]
    if causal and (nq != nk or key_padding_mask is not None):
        out = _sdpa_masked(q, k, v, key_padding_mask, nk - nq, scale)
    elif key_padding_mask is not None:
        out = _sdpa_masked(q, k, v, key_padding_mask, None, scale)
    else:  # plain or square causal: SDPA as is
        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=scale)
    if gate is not None:
        out = out * torch.sigmoid(gate)
    return out


def _pad_packed(x: torch.Tensor, seq_id, pos, batch: int, max_len: int) -> torch.Tensor:
    """(total, H, D) packed -> (B, H, max_len, D) zero-padded."""
    padded = x.new_zeros(batch, max_len, x.shape[1], x.shape[2])
    padded = padded.index_put((seq_id, pos), x)
    return padded.transpose(1, 2)


def _positions(cu: torch.Tensor, total: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequence index and position inside the sequence of every packed row."""
    rows = torch.arange(total, dtype=cu.dtype, device=cu.device)
    seq_id = torch.searchsorted(cu[1:], rows, right=True)
    return seq_id, (rows - cu[seq_id]).long()


@VARLEN_ATTENTION.register("torch")
def varlen_attention_torch(
    q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, causal, scale
) -> torch.Tensor:
    """Exact PyTorch backend of :func:`varlen_attention`: pad, masked dense attention, unpad."""
    batch = cu_seqlens_q.shape[0] - 1
    q_seq, q_pos = _positions(cu_seqlens_q, q.shape[0])
    k_seq, k_pos = _positions(cu_seqlens_k, k.shape[0])
    qp = _pad_packed(q, q_seq, q_pos, batch, max_seqlen_q)  # (B, H, Mq, D)
    kp = _pad_packed(k, k_seq, k_pos, batch, max_seqlen_k)
    vp = _pad_packed(v, k_seq, k_pos, batch, max_seqlen_k)
    len_q = (cu_seqlens_q[1:] - cu_seqlens_q[:-1]).long()
    len_k = (cu_seqlens_k[1:] - cu_seqlens_k[:-1]).long()
    key_valid = torch.arange(max_seqlen_k, device=q.device) < len_k[:, None]  # (B, Mk)
    out = _sdpa_masked(qp, kp, vp, key_valid, len_k - len_q if causal else None, scale)
    return out.transpose(1, 2)[q_seq, q_pos]  # (total_q, H, D)


if TRITON_AVAILABLE:
    from tessera.kernels import _attention_triton

    ATTENTION.register("triton", _attention_triton.supports)(_attention_triton.attention_triton)
    VARLEN_ATTENTION.register("triton", _attention_triton.supports)(
        _attention_triton.varlen_attention_triton
    )
