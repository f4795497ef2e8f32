"""Registration of the human pose app (no heavy imports here)."""

from tessera.apps.registry import AppSpec

APP = AppSpec(
    name="pose",
    title="Human pose",
    summary="PSA heatmap keypoints on COCO and 2-D→3-D lifting with skeleton-aware attention.",
    cli="tessera.apps.pose.cli:main",
    demo="tessera.demos.pose:build_demo",
    checkpoints="tessera.apps.pose.recipes:train",
)
