"""Data plumbing shared by every task: atomic writes, item errors, skip reports."""

from tessera.datamodules.common.errors import (
    DataError,
    OnError,
    SkippedItem,
    collate_skipping,
    is_empty_batch,
    load_item,
)
from tessera.datamodules.common.io import (
    atomic_write,
    atomic_write_bytes,
    atomic_write_text,
    cache_dir,
)

__all__ = [
    "cache_dir",
    "DataError",
    "OnError",
    "SkippedItem",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "collate_skipping",
    "is_empty_batch",
    "load_item",
]
