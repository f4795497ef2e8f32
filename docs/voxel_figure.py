"""Draw the voxel-transformer partitions of a toy scene: ``python docs/voxel_figure.py``.

Writes ``docs/figures/voxel_partitions.png`` with four bird's-eye panels of the same sparse
scene: DSVT Y-sorted sets, DSVT X-sorted sets (rotated), the FlatFormer x-snake order cut into
groups, and the ScatterFormer windows.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from tessera.shared_blocks.voxel.dsvt import rotated_sets  # noqa: E402
from tessera.shared_blocks.voxel.partition import (  # noqa: E402
    snake_key,
    window_offsets,
)

GRID = (1, 16, 16)
WINDOW = (1, 8, 8)
OUT = Path(__file__).parent / "figures" / "voxel_partitions.png"


def toy_scene(seed: int = 3) -> torch.Tensor:
    """~70 pillars: a dense blob (a big window) and scattered points (small windows)."""
    g = torch.Generator().manual_seed(seed)
    blob = torch.stack(
        [torch.randint(1, 8, (60,), generator=g), torch.randint(8, 15, (60,), generator=g)], 1
    )
    rest = torch.randint(0, 16, (30, 2), generator=g)
    yx = torch.unique(torch.cat([blob, rest]), dim=0)
    zeros = torch.zeros(len(yx), dtype=torch.long)
    return torch.stack([zeros, zeros, yx[:, 0], yx[:, 1]], 1)


def draw_grid(ax, window: tuple[int, int]) -> None:
    ax.set_xlim(-0.5, GRID[2] - 0.5)
    ax.set_ylim(-0.5, GRID[1] - 0.5)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    for v in range(0, GRID[2] + 1, window[1]):
        ax.axvline(v - 0.5, color="0.3", lw=1.2)
    for v in range(0, GRID[1] + 1, window[0]):
        ax.axhline(v - 0.5, color="0.3", lw=1.2)


def draw_sets(ax, coords, part, title) -> None:
    cmap = plt.get_cmap("tab20")
    y, x = coords[:, 2], coords[:, 3]
    home_set = part.home_slot // part.voxel_index.shape[1]
    ax.scatter(x, y, c=[cmap(int(s) % 20) for s in home_set], s=60, marker="s")
    repeats = torch.bincount(part.voxel_index.flatten(), minlength=len(coords)) > 1
    ax.scatter(x[repeats], y[repeats], s=8, c="k", marker="o")
    draw_grid(ax, WINDOW[1:])
    ax.set_title(title, fontsize=9)


def main() -> None:
    coords = toy_scene()
    sets = rotated_sets(coords, GRID, WINDOW, (0, 0, 0), set_size=12)
    fig, axes = plt.subplots(1, 4, figsize=(12, 3.9))
    draw_sets(axes[0], coords, sets.sets_y, "DSVT sets, y-sorted (tau=12)\ndot = repeated slot")
    draw_sets(axes[1], coords, sets.sets_x, "DSVT sets, x-sorted (rotated)")

    ax = axes[2]
    key = snake_key(coords, GRID, (4, 4), (0, 0), "x")
    order = torch.argsort(key)
    path = coords[order]
    ax.plot(path[:, 3], path[:, 2], color="0.6", lw=0.8, zorder=1)
    group = torch.arange(len(order)) // 16
    ax.scatter(path[:, 3], path[:, 2], c=group, cmap="tab10", s=60, marker="s", zorder=2)
    draw_grid(ax, (4, 4))
    ax.set_title("FlatFormer x-snake order (4x4 windows)\ngroups of 16", fontsize=9)

    ax = axes[3]
    order, offsets, _ = window_offsets(coords, GRID, WINDOW)
    win = torch.empty(len(coords), dtype=torch.long)
    win[order] = torch.repeat_interleave(torch.arange(len(offsets) - 1), offsets.diff())
    ax.scatter(coords[:, 3], coords[:, 2], c=win, cmap="Set2", s=60, marker="s")
    cy, cx = 11, 4
    ax.add_patch(plt.Rectangle((cx - 1.5, cy - 1.5), 3, 3, fill=False, ec="r", lw=1.5))
    ax.add_patch(plt.Rectangle((cx - 6.5, cy - 0.5), 13, 1, fill=False, ec="b", lw=1))
    ax.add_patch(plt.Rectangle((cx - 0.5, cy - 6.5), 1, 13, fill=False, ec="b", lw=1))
    draw_grid(ax, WINDOW[1:])
    ax.set_title(
        "ScatterFormer windows (ragged, no padding)\nCWI kernels 3x3, 1x13, 13x1", fontsize=9
    )
    fig.tight_layout()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=90)
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
