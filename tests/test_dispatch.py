"""The kernel backend registry picks, forces and refuses backends as documented."""

import pytest
import torch

from tessera.kernels.dispatch import KernelOp, triton_runnable


def _op():
    op = KernelOp("toy")

    def small_only(x):
        return None if x.shape[-1] <= 4 else "last dim > 4"

    op.register("triton", triton_runnable, small_only)(lambda x: ("triton", x))
    op.register("torch")(lambda x: ("torch", x))
    return op


def test_cpu_tensors_take_torch_without_interpreter(monkeypatch):
    monkeypatch.delenv("TESSERA_KERNELS", raising=False)
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert _op()(torch.zeros(2))[0] == "torch"


def test_forced_triton_runs_interpreter_on_cpu(monkeypatch):
    monkeypatch.setenv("TESSERA_KERNELS", "triton")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert _op()(torch.zeros(2))[0] == "triton"


def test_forced_backend_failing_a_constraint_raises_with_reason(monkeypatch):
    monkeypatch.setenv("TESSERA_KERNELS", "triton")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    with pytest.raises(RuntimeError, match="last dim > 4"):
        _op()(torch.zeros(8))


def test_auto_falls_back_to_torch_when_a_constraint_fails(monkeypatch):
    monkeypatch.delenv("TESSERA_KERNELS", raising=False)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert _op()(torch.zeros(8))[0] == "torch"


def test_unknown_backend_name_is_rejected(monkeypatch):
    monkeypatch.setenv("TESSERA_KERNELS", "cuda")
    with pytest.raises(ValueError, match="expected one of"):
        _op()(torch.zeros(2))
