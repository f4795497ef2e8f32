"""Suite-wide test setup.

Triton reads ``TRITON_INTERPRET`` when ``@triton.jit`` decorates a kernel, i.e. when a kernel
module is first imported, so it is set here, before any test module imports ``tessera``.
Without a GPU the interpreter is the only way to run Triton code; with one, the real
compiler is used and the interpreter stays off.
"""

import os
import shutil

import pytest

if not shutil.which("nvidia-smi"):
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same random state."""
    import random

    import numpy as np
    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture
def triton_backend(monkeypatch):
    """Forces the Triton backend for the test (the interpreter when there is no GPU)."""
    monkeypatch.setenv("TESSERA_KERNELS", "triton")
    yield


@pytest.fixture
def torch_backend(monkeypatch):
    """Forces the exact PyTorch backend for the test."""
    monkeypatch.setenv("TESSERA_KERNELS", "torch")
    yield
