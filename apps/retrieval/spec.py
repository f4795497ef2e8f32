"""Registration of the text-video retrieval app (no heavy imports here)."""

from tessera.apps.registry import AppSpec

APP = AppSpec(
    name="retrieval",
    title="Text-video retrieval",
    summary="X-Pool text-conditioned pooling of CLIP frames: find videos a sentence describes.",
    cli="tessera.apps.retrieval.cli:main",
    demo="tessera.demos.retrieval:build_demo",
    checkpoints="tessera.apps.retrieval.recipes:train",
)
