"""The block tests run tiny tensors: one intra-op thread avoids OpenMP oversubscription, which
on the shared 2-core machine made fp64 gradchecks ~30x slower under load."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
