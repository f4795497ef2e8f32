"""Registration of the segmentation app (plain data; imports nothing heavy)."""

from tessera.apps.registry import AppSpec

APP = AppSpec(
    name="segmentation",
    title="Segmentation",
    summary="semantic/medical segmentation (axial + polarized attention) and text-conditioned "
    "segmentation with Sentence Attention Blocks",
    cli="tessera.apps.segmentation.cli:main",
    demo="tessera.demos.segmentation:build_demo",
    checkpoints="tessera.apps.segmentation.recipes:train",
)
