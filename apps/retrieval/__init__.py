"""Text-video retrieval app: X-Pool (+ mean pooling, TEFAL audio) on MSR-VTT-style data.

from tessera.apps.retrieval import load
retriever = load("model.safetensors")
retriever("a red circle moves left", ["a.mp4", "b.mp4"])   # ranked, best first
"""

from tessera.apps.retrieval.api import TASK, VideoRetriever, export, load

__all__ = ["TASK", "VideoRetriever", "export", "load"]
