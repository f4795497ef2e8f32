"""LiDAR 3-D detection: DSVT / FlatFormer / ScatterFormer pillars + CenterPoint head."""

from tessera.apps.detection3d.api import Detector, load, save

__all__ = ["Detector", "load", "save"]
