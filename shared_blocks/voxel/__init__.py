"""Sparse voxel transformers on OpenPCDet ``voxel_coords``: DSVT, FlatFormer, ScatterFormer.

Pure PyTorch index bookkeeping plus :mod:`tessera.kernels` attention ops (Triton on CUDA,
exact PyTorch on CPU); no spconv, torch_scatter, flash-attn or custom CUDA op.
"""

from tessera.shared_blocks.voxel.dsvt import (
    DSVTBackbone,
    DSVTBlock,
    DSVTPooling,
    dsvt_pillar,
    dsvt_tiny,
)
from tessera.shared_blocks.voxel.flatformer import (
    FlatFormer,
    FlatFormerBlock,
    FlatWindowAttention,
    flatformer_tiny,
    flatformer_waymo,
)
from tessera.shared_blocks.voxel.scatterformer import (
    CrossWindowInteraction,
    ScatteredLinearAttention,
    ScatterFormer,
    ScatterFormerBlock,
    scatterformer_tiny,
    scatterformer_waymo,
)
from tessera.shared_blocks.voxel.sparse_conv import SparseDepthwiseConv3d, neighbour_index

__all__ = [
    "CrossWindowInteraction",
    "DSVTBackbone",
    "DSVTBlock",
    "DSVTPooling",
    "FlatFormer",
    "FlatFormerBlock",
    "FlatWindowAttention",
    "ScatterFormer",
    "ScatterFormerBlock",
    "ScatteredLinearAttention",
    "SparseDepthwiseConv3d",
    "dsvt_pillar",
    "dsvt_tiny",
    "flatformer_tiny",
    "flatformer_waymo",
    "neighbour_index",
    "scatterformer_tiny",
    "scatterformer_waymo",
]
