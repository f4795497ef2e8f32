"""Backend registry for the kernel ops.

Each op registers one implementation per backend together with constraint checks
(dtype, head dim, ...). A call picks the first backend whose checks all pass, in preference
order ``triton`` then ``torch``; Triton is only chosen automatically when every tensor is on
CUDA, and the PyTorch backend accepts everything and is the exact reference.
``TESSERA_KERNELS=torch|triton`` forces a backend: forcing Triton on CPU tensors runs the
Triton interpreter (needs ``TRITON_INTERPRET=1`` before kernels are imported; used by the
tests), and a forced backend whose checks fail raises instead of silently running another.

Modelled on diffusers' attention dispatch registry (``attention_dispatch.py``).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

BACKENDS = ("triton", "torch")
ENV_VAR = "TESSERA_KERNELS"

# A constraint returns None when the call is supported, else a short reason.
Constraint = Callable[..., str | None]

TRITON_AVAILABLE = importlib.util.find_spec("triton") is not None


def interpreter_enabled() -> bool:
    """True when Triton kernels run in the CPU interpreter."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


@dataclass
class _Impl:
    fn: Callable
    constraints: tuple[Constraint, ...] = ()

    def reasons(self, *args, **kwargs) -> list[str]:
        return [r for c in self.constraints if (r := c(*args, **kwargs)) is not None]


@dataclass
class KernelOp:
    """One op with its per-backend implementations."""

    name: str
    impls: dict[str, _Impl] = field(default_factory=dict)

    def register(self, backend: str, *constraints: Constraint):
        """Decorator: ``@op.register("triton", on_cuda_or_interpreter, head_dim_at_most(128))``."""
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")

        def decorate(fn: Callable) -> Callable:
            self.impls[backend] = _Impl(fn, constraints)
            return fn

        return decorate

    def select(self, *args, **kwargs) -> tuple[str, Callable]:
        """The backend name and function that will run this call."""
        forced = forced_backend()
        candidates = [forced] if forced else list(BACKENDS)
        rejected = []
        for backend in candidates:
            impl = self.impls.get(backend)
            if impl is None:
                rejected.append(f"{backend}: not implemented")
                continue
            reasons = impl.reasons(*args, **kwargs)
            if backend == "triton":
                reasons = _triton_device_reasons(forced == "triton", *args, **kwargs) + reasons
            if not reasons:
                return backend, impl.fn
            rejected.append(f"{backend}: {'; '.join(reasons)}")
        raise RuntimeError(f"{self.name}: no backend can run this call ({' | '.join(rejected)})")

    def __call__(self, *args, **kwargs):
        _, fn = self.select(*args, **kwargs)
        return fn(*args, **kwargs)


def forced_backend() -> str | None:
    """The backend named by ``TESSERA_KERNELS``, or None for automatic choice."""
    forced = os.environ.get(ENV_VAR, "").strip().lower() or None
    if forced is not None and forced not in BACKENDS:
        raise ValueError(f"{ENV_VAR}={forced!r}; expected one of {', '.join(BACKENDS)}")
    return forced


def tensors_of(*args, **kwargs) -> list[torch.Tensor]:
    return [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]


def _triton_device_reasons(forced: bool, *args, **kwargs) -> list[str]:
    if not TRITON_AVAILABLE:
        return ["triton is not installed"]
    if all(t.is_cuda for t in tensors_of(*args, **kwargs)):
        return []
    if forced and interpreter_enabled():
        return []
    if forced:
        return ["tensors are on the CPU and TRITON_INTERPRET=1 was not set before import"]
    return ["tensors are not on a CUDA device"]
