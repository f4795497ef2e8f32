"""Text-video retrieval data: MSR-VTT, MSVD and generic layouts, frame sampling, audio."""

from tessera.datamodules.retrieval.datamodule import RetrievalDataModule
from tessera.datamodules.retrieval.layouts import VideoItem, detect_layout, list_videos, read_split

__all__ = ["RetrievalDataModule", "VideoItem", "detect_layout", "list_videos", "read_split"]
