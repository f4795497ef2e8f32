"""Registration of the virtual try-on app (no heavy imports here)."""

from tessera.apps.registry import AppSpec

APP = AppSpec(
    name="tryon",
    title="Virtual try-on",
    summary="MV-VTON dresses a person in a front/back garment pair with a diffusion model.",
    cli="tessera.apps.tryon.cli:main",
    demo="tessera.demos.tryon:build_demo",
    checkpoints="tessera.apps.tryon.recipes:train",
)
