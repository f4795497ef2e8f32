"""Registration of the speech separation app (no heavy imports here)."""

from tessera.apps.registry import AppSpec

APP = AppSpec(
    name="separation",
    title="Speech separation",
    summary="MossFormer splits a recording of overlapping talkers into one track per speaker.",
    cli="tessera.apps.separation.cli:main",
    demo="tessera.demos.separation:build_demo",
    checkpoints="tessera.apps.separation.recipes:train",
)
