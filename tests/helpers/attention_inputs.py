"""Inputs and the error criterion shared by the attention kernel tests."""

from __future__ import annotations

import torch

# Absolute error floor added to the "2x plain PyTorch" criterion, per dtype.
ERROR_FLOOR = {torch.float32: 1e-5, torch.float16: 1e-3, torch.bfloat16: 1e-2}


def key_mask(kind: str, batch: int, nk: int) -> torch.Tensor | None:
    """A bool (B, Nk) key padding mask, True = attend.

    ``none``: no mask; ``ragged``: random keys dropped; ``empty_batch``: batch element 1 sees
    no key at all; ``prefix``: the first 3 keys are masked, so with causal the first query
    rows see nothing.
    """
    if kind == "none":
        return None
    mask = torch.ones(batch, nk, dtype=torch.bool)
    if kind == "ragged":
        mask = torch.rand(batch, nk) > 0.3
        mask[:, -1] = True
    elif kind == "empty_batch":
        mask[1] = False
    elif kind == "prefix":
        mask[:, :3] = False
    else:
        raise ValueError(kind)
    return mask


def dense_inputs(b, h, nq, nk, d, dtype, *, gate: bool, device="cpu"):
    """q, k, v (and gate or None) leaf tensors with requires_grad."""
    shapes = {"q": (b, h, nq, d), "k": (b, h, nk, d), "v": (b, h, nk, d)}
    if gate:
        shapes["gate"] = (b, h, nq, d)
    out = {n: torch.randn(s, device=device).to(dtype).requires_grad_() for n, s in shapes.items()}
    return out["q"], out["k"], out["v"], out.get("gate")


def max_err(x: torch.Tensor, ref: torch.Tensor) -> float:
    return (x.double() - ref.double()).abs().max().item()


def assert_within_plain_error(name, out, plain, ref, dtype) -> None:
    """flash-attn criterion: err(out) <= 2 * err(plain PyTorch, same dtype) + floor."""
    err, base = max_err(out, ref), max_err(plain, ref)
    bound = 2 * base + ERROR_FLOOR[dtype]
    assert err <= bound, f"{name}: error {err:.3e} > 2 * {base:.3e} + {ERROR_FLOOR[dtype]:.0e}"


def cu_seqlens(lengths: list[int]) -> torch.Tensor:
    """int32 (B + 1,) cumulative lengths starting at 0."""
    return torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32)
