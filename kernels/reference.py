"""Brute-force references for the kernel tests: every matrix materialised, nothing fused.

Kept in the package (as FlagAttention ships ``flag_attn.testing``) so tests and benchmarks of
every backend compare against one definition. ``upcast=True`` computes in float64 (the
ground truth); ``upcast=False`` computes in the input precision, which is the "plain PyTorch"
error yardstick of the flash-attn test criterion ``err(kernel) <= 2 * err(plain PyTorch)``.
"""

from __future__ import annotations

import torch


def attention_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    *,
    key_padding_mask: torch.Tensor | None = None,
    causal: bool = False,
    gate: torch.Tensor | None = None,
    scale: float | None = None,
    upcast: bool = True,
) -> torch.Tensor:
    """softmax(q k^T * scale + mask) v, optionally gated by sigmoid(gate).

    Fully masked query rows give zeros; causal masking is aligned to the bottom-right corner
    (query i sees key j iff j <= i + Nk - Nq), as in flash-attn.

    Args:
        q: (B, H, Nq, D).
        k: (B, H, Nk, D).
        v: (B, H, Nk, D).
        key_padding_mask: bool (B, Nk), True = attend.
        causal: bottom-right aligned causal mask.
        gate: (B, H, Nq, D); the output is multiplied by sigmoid(gate).
        scale: score scale, default D ** -0.5.
        upcast: compute in float64 instead of the input dtype.

    Returns:
        (B, H, Nq, D) in float64 if ``upcast`` else in the input dtype.
    """
    dtype = torch.float64 if upcast else q.dtype
    q, k, v = q.to(dtype), k.to(dtype), v.to(dtype)
    nq, nk = q.shape[-2], k.shape[-2]
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    scores = (q @ k.transpose(-1, -2)) * scale  # (B, H, Nq, Nk)
    keep = torch.ones(nq, nk, dtype=torch.bool, device=q.device)
    if causal:
        keep = torch.ones_like(keep).tril(nk - nq)
    keep = keep.expand(q.shape[0], 1, nq, nk)
    if key_padding_mask is not None:
        keep = keep & key_padding_mask[:, None, None, :]
    scores = scores.masked_fill(~keep, float("-inf"))
    row_has_key = keep.any(-1, keepdim=True)
    probs = torch.softmax(scores.masked_fill(~row_has_key, 0.0), dim=-1) * row_has_key
    out = probs @ v
    if gate is not None:
        out = out * torch.sigmoid(gate.to(dtype))
    return out


def varlen_attention_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cu_seqlens_q: torch.Tensor,
    cu_seqlens_k: torch.Tensor,
    *,
    causal: bool = False,
    scale: float | None = None,
    upcast: bool = True,
) -> torch.Tensor:
    """Packed attention computed sequence by sequence with :func:`attention_reference`.

    Args:
        q: (total_q, H, D) packed queries.
        k: (total_k, H, D) packed keys.
        v: (total_k, H, D) packed values.
        cu_seqlens_q: (B + 1,) cumulative query lengths.
        cu_seqlens_k: (B + 1,) cumulative key lengths.
        causal: bottom-right aligned causal mask within each sequence.
        scale: score scale, default D ** -0.5.
        upcast: compute in float64.

    Returns:
        (total_q, H, D).
    """
    cq, ck = cu_seqlens_q.tolist(), cu_seqlens_k.tolist()
    dtype = torch.float64 if upcast else q.dtype
    outs = []
    for b in range(len(cq) - 1):
        qs = q[cq[b] : cq[b + 1]].transpose(0, 1)[None]  # (1, H, Lq, D)
        if qs.shape[-2] == 0:
            continue
        ks = k[ck[b] : ck[b + 1]].transpose(0, 1)[None]
        vs = v[ck[b] : ck[b + 1]].transpose(0, 1)[None]
        if ks.shape[-2] == 0:  # no keys at all: zeros, like a fully masked row
            outs.append(q.new_zeros(qs.shape[-2], q.shape[1], q.shape[2], dtype=dtype))
            continue
        out = attention_reference(qs, ks, vs, causal=causal, scale=scale, upcast=upcast)
        outs.append(out[0].transpose(0, 1))
    return torch.cat(outs, 0)
