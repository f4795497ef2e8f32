"""Random sparse voxel scenes for the voxel-transformer tests."""

import pytest
import torch


def random_scene(
    n: int,
    grid_shape: tuple[int, int, int],
    batch_size: int = 2,
    channels: int = 8,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    batches: tuple[int, ...] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """n distinct voxels spread over ``batches`` (default ``range(batch_size)``), with clusters
    so that window occupancy is uneven: (features (n, channels), coords (n, 4) b, z, y, x)."""
    g = torch.Generator().manual_seed(seed)
    batches = tuple(range(batch_size)) if batches is None else batches
    z, y, x = grid_shape
    cells = z * y * x
    picked = []
    for i, b in enumerate(batches):
        share = n // len(batches) + (1 if i < n % len(batches) else 0)
        # Half the voxels in a dense blob (big windows), half uniform (small windows).
        cy, cx = torch.randint(0, y, (1,), generator=g), torch.randint(0, x, (1,), generator=g)
        blob = torch.stack(
            [
                torch.randint(0, z, (4 * cells,), generator=g),
                (cy + torch.randint(-3, 4, (4 * cells,), generator=g)).clamp(0, y - 1),
                (cx + torch.randint(-3, 4, (4 * cells,), generator=g)).clamp(0, x - 1),
            ],
            1,
        )
        flat = (blob[:, 0] * y + blob[:, 1]) * x + blob[:, 2]
        flat = torch.cat([flat[: share // 2 * 8], torch.randperm(cells, generator=g)])
        uniq = []
        seen = set()
        for v in flat.tolist():
            if v not in seen:
                seen.add(v)
                uniq.append(v)
            if len(uniq) == share:
                break
        flat = torch.tensor(uniq, dtype=torch.long)
        picked.append(
            torch.stack([torch.full_like(flat, b), flat // (y * x), flat // x % y, flat % x], 1)
        )
    coords = torch.cat(picked)[torch.randperm(n, generator=g)]
    feats = torch.randn(n, channels, generator=g, dtype=dtype)
    return feats, coords


@pytest.fixture
def scene():
    return random_scene
