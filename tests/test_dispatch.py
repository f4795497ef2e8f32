"""The kernel backend registry picks, forces and refuses backends as documented."""

import pytest
import torch

from tessera.kernels.dispatch import KernelOp


def _op():
    op = KernelOp("toy")

    def small_only(x):
        return None if x.shape[-1] <= 4 else "last dim > 4"

    op.register("triton", small_only)(lambda x: ("triton", x))
    op.register("torch")(lambda x: ("torch", x))
    return op


def test_cpu_tensors_take_torch_even_with_interpreter_on(monkeypatch):
    monkeypatch.delenv("TESSERA_KERNELS", raising=False)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert _op()(torch.zeros(2))[0] == "torch"


def test_forced_triton_on_cpu_without_interpreter_explains(monkeypatch):
    monkeypatch.setenv("TESSERA_KERNELS", "triton")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        _op()(torch.zeros(2))


def test_forced_triton_runs_interpreter_on_cpu(monkeypatch):
    monkeypatch.setenv("TESSERA_KERNELS", "triton")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert _op()(torch.zeros(2))[0] == "triton"


def test_forced_backend_failing_a_constraint_raises_with_reason(monkeypatch):
    monkeypatch.setenv("TESSERA_KERNELS", "triton")
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    with pytest.raises(RuntimeError, match="last dim > 4"):
        _op()(torch.zeros(8))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_auto_prefers_triton_on_cuda_and_falls_back_on_a_failed_constraint(monkeypatch):
    monkeypatch.delenv("TESSERA_KERNELS", raising=False)
    assert _op()(torch.zeros(2, device="cuda"))[0] == "triton"
    assert _op()(torch.zeros(8, device="cuda"))[0] == "torch"


def test_unknown_backend_name_is_rejected(monkeypatch):
    monkeypatch.setenv("TESSERA_KERNELS", "cuda")
    with pytest.raises(ValueError, match="expected one of"):
        _op()(torch.zeros(2))
