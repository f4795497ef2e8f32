"""Attention kernels: Triton on CUDA, exact PyTorch on CPU, one public API."""

from tessera.kernels.attention import attention as attention
from tessera.kernels.attention import varlen_attention as varlen_attention
from tessera.kernels.chunked_linear_attention import (
    chunked_linear_attention as chunked_linear_attention,
)
from tessera.kernels.deform_attn3d import deform_attn3d as deform_attn3d
from tessera.kernels.scatter_linear_attention import (
    scatter_linear_attention as scatter_linear_attention,
)
