"""Registration of the LiDAR 3-D detection app (no heavy imports here)."""

from tessera.apps.registry import AppSpec

APP = AppSpec(
    name="detection3d",
    title="LiDAR 3-D detection",
    summary="DSVT / FlatFormer / ScatterFormer pillars with a CenterPoint head find cars, "
    "pedestrians and cyclists in KITTI-format point clouds, on CPU.",
    cli="tessera.apps.detection3d.cli:main",
    demo="tessera.demos.detection3d:build_demo",
    checkpoints="tessera.apps.detection3d.recipes:train",
)
