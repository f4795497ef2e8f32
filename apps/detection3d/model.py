"""Pillar detector: dynamic voxelisation -> pillar feature net -> sparse voxel transformer
(DSVT / FlatFormer / ScatterFormer from :mod:`tessera.shared_blocks.voxel`) -> BEV scatter ->
BEV ResNet -> CenterPoint head (:mod:`.center_head`).

The chain of OpenPCDet's DSVT-Pillar model (``DynamicPillarVFE`` -> ``DSVT`` ->
``PointPillarScatter3d`` -> ``BaseBEVResBackbone`` -> ``CenterHead``) without spconv,
torch_scatter or CUDA ops: voxel ids come from ``torch.unique`` and pooling from
``scatter_reduce``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from tessera.apps.detection3d.center_head import CenterHead
from tessera.shared_blocks import BLOCKS


@dataclass
class Voxels:
    """Non-empty pillars of a batch: ``coords (M, 4)`` (batch, z, y, x), ``point_voxel (N,)``
    the pillar of every kept point, ``points (N, 5)`` (batch, x, y, z, intensity)."""

    coords: torch.Tensor
    point_voxel: torch.Tensor
    points: torch.Tensor


class DynamicVoxelizer(nn.Module):
    """Points -> pillar ids with ``torch.unique`` (OpenPCDet ``DynamicPillarVFE`` indexing).

    Args:
        point_cloud_range: (x0, y0, z0, x1, y1, z1) in metres; points outside are dropped.
        voxel_size: (vx, vy, vz); ``vz`` spans the range for pillars.
    """

    def __init__(self, point_cloud_range: Sequence[float], voxel_size: Sequence[float]):
        super().__init__()
        self.register_buffer(
            "pc_range", torch.tensor(point_cloud_range, dtype=torch.float32), persistent=False
        )
        self.register_buffer(
            "voxel_size", torch.tensor(voxel_size, dtype=torch.float32), persistent=False
        )
        grid = [
            round((point_cloud_range[i + 3] - point_cloud_range[i]) / voxel_size[i])
            for i in range(3)
        ]
        self.grid_xyz = tuple(int(g) for g in grid)  # (nx, ny, nz)

    @property
    def grid_shape(self) -> tuple[int, int, int]:
        """(nz, ny, nx), the voxel blocks' order."""
        nx, ny, nz = self.grid_xyz
        return nz, ny, nx

    def forward(self, points: Sequence[torch.Tensor]) -> Voxels:
        batch = (
            torch.cat(
                [
                    torch.full((len(p), 1), b, dtype=torch.float32, device=p.device)
                    for b, p in enumerate(points)
                ]
            )
            if points
            else torch.zeros(0, 1)
        )
        pts = (
            torch.cat([batch, torch.cat(list(points)).float()], 1) if points else torch.zeros(0, 5)
        )
        pts = pts.to(self.pc_range.device)
        cell = torch.floor((pts[:, 1:4] - self.pc_range[:3]) / self.voxel_size).long()
        grid = torch.tensor(self.grid_xyz, device=cell.device)
        keep = ((cell >= 0) & (cell < grid)).all(1)
        pts, cell = pts[keep], cell[keep]
        nx, ny, nz = self.grid_xyz
        key = ((pts[:, 0].long() * nz + cell[:, 2]) * ny + cell[:, 1]) * nx + cell[:, 0]
        unique, inverse = torch.unique(key, return_inverse=True)
        coords = torch.stack(
            [unique // (nz * ny * nx), unique // (ny * nx) % nz, unique // nx % ny, unique % nx], 1
        )
        return Voxels(coords.to(torch.int32), inverse, pts)


class PillarFeatureNet(nn.Module):
    """Per-point features [x, y, z, i, offsets to the pillar mean (3), to the pillar centre (3)]
    -> stacked (Linear-BN-ReLU, max over the pillar, concat) layers -> (M, C) pillar features
    (OpenPCDet ``PFNLayerV2``).

    Args:
        out_channels: C.
        num_layers: PFN layers (2 in DSVT-Pillar: 128 then 192 channels).
    """

    def __init__(self, out_channels: int, point_cloud_range, voxel_size, num_layers: int = 2):
        super().__init__()
        self.register_buffer(
            "pc_range", torch.tensor(point_cloud_range, dtype=torch.float32), persistent=False
        )
        self.register_buffer(
            "voxel_size", torch.tensor(voxel_size, dtype=torch.float32), persistent=False
        )
        widths = [10] + [out_channels] * num_layers
        self.layers = nn.ModuleList()
        for i in range(num_layers):
            last = i == num_layers - 1
            out = widths[i + 1] if last else widths[i + 1] // 2
            self.layers.append(
                nn.Sequential(
                    nn.Linear(widths[i], out, bias=False),
                    nn.BatchNorm1d(out, eps=1e-3, momentum=0.01),
                    nn.ReLU(),
                )
            )

    def forward(self, voxels: Voxels) -> torch.Tensor:
        pts, inv = voxels.points, voxels.point_voxel
        m = voxels.coords.shape[0]
        xyz = pts[:, 1:4]
        mean = xyz.new_zeros(m, 3).scatter_reduce_(
            0, inv[:, None].expand(-1, 3), xyz, "mean", include_self=False
        )
        centre = (voxels.coords[:, [3, 2, 1]].float() + 0.5) * self.voxel_size + self.pc_range[:3]
        x = torch.cat([xyz, pts[:, 4:5], xyz - mean[inv], xyz - centre[inv]], 1)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            pooled = x.new_zeros(m, x.shape[1]).scatter_reduce_(
                0, inv[:, None].expand_as(x), x, "amax", include_self=False
            )
            if i < len(self.layers) - 1:
                x = torch.cat([x, pooled[inv]], 1)
        return pooled


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False),
                nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.down is None else self.down(x)
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + identity)


class BEVResBackbone(nn.Module):
    """OpenPCDet ``BaseBEVResBackbone``: residual stages, each upsampled (or strided) to a
    common resolution and concatenated.

    Shapes: (B, C_in, H, W) -> (B, sum(upsample_filters), H / s, W / s) with
    ``s = layer_strides[0] / upsample_strides[0]``.
    """

    def __init__(
        self,
        in_channels: int,
        layer_nums,
        layer_strides,
        num_filters,
        upsample_strides,
        upsample_filters,
    ):
        super().__init__()
        self.stages, self.ups = nn.ModuleList(), nn.ModuleList()
        cin = in_channels
        for n, stride, width, up, up_width in zip(
            layer_nums, layer_strides, num_filters, upsample_strides, upsample_filters, strict=True
        ):
            blocks = [BasicBlock(cin, width, stride)] + [BasicBlock(width, width) for _ in range(n)]
            self.stages.append(nn.Sequential(*blocks))
            if up >= 1:
                conv = nn.ConvTranspose2d(width, up_width, int(up), int(up), bias=False)
            else:
                conv = nn.Conv2d(width, up_width, round(1 / up), round(1 / up), bias=False)
            self.ups.append(
                nn.Sequential(conv, nn.BatchNorm2d(up_width, eps=1e-3, momentum=0.01), nn.ReLU())
            )
            cin = width
        self.out_channels = sum(upsample_filters)
        self.stride = layer_strides[0] / upsample_strides[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for stage, up in zip(self.stages, self.ups, strict=True):
            x = stage(x)
            outs.append(up(x))
        return torch.cat(outs, 1)


BACKBONES = (
    "DSVTBackbone",
    "dsvt_tiny",
    "dsvt_pillar",
    "FlatFormer",
    "flatformer_tiny",
    "flatformer_waymo",
    "ScatterFormer",
    "scatterformer_tiny",
    "scatterformer_waymo",
)


class PillarDetector(nn.Module):
    """The whole network; ``forward(points)`` returns the head's dense predictions.

    Args:
        class_names: detected classes (heatmap channels in this order).
        point_cloud_range, voxel_size: pillar grid (``voxel_size[2]`` = range height).
        backbone: ``{"type": <one of BACKBONES>, **overrides}``; its ``dim`` is the pillar
            feature width.
        pfn_layers: PFN layers of the pillar feature net.
        bev: :class:`BEVResBackbone` options.
        head: :class:`~.center_head.CenterHead` options.
    """

    def __init__(
        self,
        class_names: Sequence[str],
        point_cloud_range: Sequence[float],
        voxel_size: Sequence[float],
        backbone: dict,
        bev: dict,
        head: dict | None = None,
        pfn_layers: int = 2,
    ):
        super().__init__()
        backbone = dict(backbone)
        if backbone.get("type") not in BACKBONES:
            raise ValueError(
                f"backbone type must be one of {BACKBONES}, got {backbone.get('type')!r}"
            )
        self.voxelizer = DynamicVoxelizer(point_cloud_range, voxel_size)
        self.backbone = BLOCKS.build(backbone)
        dim = self.backbone.dim
        self.pfn = PillarFeatureNet(dim, point_cloud_range, voxel_size, pfn_layers)
        self.bev = BEVResBackbone(dim, **bev)
        stride = self.bev.stride
        self.head = CenterHead(
            self.bev.out_channels,
            list(class_names),
            point_cloud_range,
            voxel_size,
            stride,
            **(head or {}),
        )

    def bev_features(self, points: Sequence[torch.Tensor]) -> torch.Tensor:
        """(B, C, ny, nx) dense BEV canvas of the backbone's pillar features."""
        voxels = self.voxelizer(points)
        feats = self.pfn(voxels)
        grid = self.voxelizer.grid_shape
        feats = self.backbone(feats, voxels.coords, grid)
        nz, ny, nx = grid
        b = len(points)
        canvas = feats.new_zeros(b * nz * ny * nx, feats.shape[1])
        c = voxels.coords.long()
        canvas[((c[:, 0] * nz + c[:, 1]) * ny + c[:, 2]) * nx + c[:, 3]] = feats
        return canvas.view(b, nz, ny, nx, -1).permute(0, 1, 4, 2, 3).reshape(b, -1, ny, nx)

    def forward(self, points: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.head(self.bev(self.bev_features(points)))
