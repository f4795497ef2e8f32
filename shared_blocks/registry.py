"""The ``BLOCKS`` registry: build any attention block from a config dict.

>>> from tessera.shared_blocks import BLOCKS
>>> block = BLOCKS.build(dict(type="AxialAttention", dim=64, heads=8))
"""

from mmengine.registry import Registry

BLOCKS = Registry("blocks", scope="tessera", locations=["tessera.shared_blocks"])
