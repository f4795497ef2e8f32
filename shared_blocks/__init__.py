"""Attention blocks (``nn.Module``) built on :mod:`tessera.kernels`, registered by name.

Every block is registered in :data:`BLOCKS` and can be built from a config dict:
``BLOCKS.build(dict(type="AxialAttention", dim=64))``. Conventions: tokens ``(B, N, C)``,
images channels-first, boolean masks True = keep.
"""

from tessera.shared_blocks import voxel  # registers the sparse voxel transformers
from tessera.shared_blocks.axial_attention import AxialAttention
from tessera.shared_blocks.cross_attention import CrossAttention
from tessera.shared_blocks.crossvit_fusion import CrossViTFusion
from tessera.shared_blocks.deformable_attention3d import DeformableAttention3D
from tessera.shared_blocks.gated_attention import GatedMultiheadAttention
from tessera.shared_blocks.joint_attention import JointAttention
from tessera.shared_blocks.joint_cross_attention import JointCrossAttention
from tessera.shared_blocks.polarized_self_attention import PolarizedSelfAttention
from tessera.shared_blocks.registry import BLOCKS
from tessera.shared_blocks.rotary import RotaryEmbedding
from tessera.shared_blocks.sentence_attention import SentenceAttentionBlock
from tessera.shared_blocks.text_conditioned_pooling import TextConditionedPooling

__all__ = [
    "BLOCKS",
    "AxialAttention",
    "CrossAttention",
    "CrossViTFusion",
    "DeformableAttention3D",
    "GatedMultiheadAttention",
    "JointAttention",
    "JointCrossAttention",
    "PolarizedSelfAttention",
    "RotaryEmbedding",
    "SentenceAttentionBlock",
    "TextConditionedPooling",
    "voxel",
]
