"""The GPU compile checker itself: it must pass a tensor-core matmul and catch the failures."""

import pytest

from helpers.triton_compile import check_compiles

pytestmark = pytest.mark.kernels

SIG = {"a": "*fp16", "b": "*fp16", "c": "*fp32"} | dict.fromkeys("MNK", "constexpr")


def test_tile_matmul_uses_tensor_cores_on_sm80_and_sm90():
    reports = check_compiles("helpers.toy_kernels:tile_matmul", SIG, {"M": 64, "N": 64, "K": 64})
    assert [r["arch"] for r in reports] == [80, 90]
    assert all(r["shared"] > 0 for r in reports)


def test_elementwise_kernel_is_flagged_when_tensor_cores_are_expected():
    with pytest.raises(AssertionError, match="tensor cores"):
        check_compiles("helpers.toy_kernels:tile_add", SIG, {"M": 64, "N": 64, "K": 64})


def test_shared_memory_overflow_is_caught():
    with pytest.raises(AssertionError, match="shared"):
        check_compiles(
            "helpers.toy_kernels:tile_matmul", SIG, {"M": 256, "N": 256, "K": 256}, num_stages=4
        )
