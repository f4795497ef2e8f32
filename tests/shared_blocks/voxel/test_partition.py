"""Window / set / snake / group partitions against brute-force Python on random sparse scenes."""

import math
from collections import defaultdict

import pytest
import torch

from tessera.shared_blocks.voxel.partition import (
    dynamic_set_partition,
    equal_size_groups,
    in_window_key,
    snake_key,
    sort_by_group,
    window_offsets,
    window_partition,
    window_volume,
)

GRID = (2, 30, 34)


def _windows(coords, window, shift):
    """Brute force: window -> [(window-relative (z, y, x), voxel index)]."""
    out = defaultdict(list)
    for i, (b, z, y, x) in enumerate(coords.tolist()):
        w = tuple((c + s) // ws for c, s, ws in zip((z, y, x), shift, window, strict=True))
        rel = tuple((c + s) % ws for c, s, ws in zip((z, y, x), shift, window, strict=True))
        out[(b, *w)].append((rel, i))
    return out


@pytest.mark.parametrize(
    ("window", "shift", "tau"),
    [((1, 6, 6), (0, 0, 0), 5), ((2, 12, 12), (0, 3, 3), 36), ((1, 4, 8), (1, 2, 4), 1)],
)
@pytest.mark.parametrize("major", ["y", "x"])
def test_dynamic_set_partition_matches_eq3(scene, window, shift, tau, major):
    _, coords = scene(400, GRID, batch_size=3, seed=tau)
    key, in_win = window_partition(coords, GRID, window, shift)
    part = dynamic_set_partition(
        key, in_window_key(in_win, window, major), window_volume(window), tau
    )
    brute = _windows(coords, window, shift)
    sort_rel = (lambda r: (r[1], r[2], r[0])) if major == "y" else (lambda r: (r[2], r[1], r[0]))

    expected_sets, small = [], 0
    for w in sorted(brute, key=lambda w: key[brute[w][0][1]].item()):
        members = [i for _, i in sorted(brute[w], key=lambda t: sort_rel(t[0]))]
        n = len(members)
        s = math.ceil(n / tau)
        small += n < tau
        for j in range(s):
            expected_sets.append([members[(j * tau + k) * n // (s * tau)] for k in range(tau)])
    assert small > 0 or tau == 1, "scene must contain windows smaller than a set"
    assert part.voxel_index.tolist() == expected_sets

    idx, mask = part.voxel_index, part.key_mask
    assert mask[:, 0].all()
    assert torch.equal(mask[:, 1:], idx[:, 1:] != idx[:, :-1])  # repeats masked, nothing else
    kept = idx[mask]
    assert torch.equal(kept.sort().values, torch.arange(coords.shape[0]))  # each voxel once
    assert torch.equal(idx.flatten()[part.home_slot], torch.arange(coords.shape[0]))
    assert mask.flatten()[part.home_slot].all()
    # a voxel never spans two sets: all its slots are in the set of its home slot
    set_of_slot = torch.arange(idx.numel()) // tau
    assert torch.equal(set_of_slot, (part.home_slot // tau)[idx.flatten()])


def test_sets_per_window_is_ceil(scene):
    _, coords = scene(300, GRID, seed=3)
    window, tau = (1, 5, 5), 4
    key, in_win = window_partition(coords, GRID, window)
    part = dynamic_set_partition(key, in_window_key(in_win, window, "y"), 25, tau)
    _, counts = torch.unique(key, return_counts=True)
    sets = torch.bincount(part.set_window, minlength=counts.numel())
    assert torch.equal(sets, (counts + tau - 1) // tau)


def test_shifted_windows_differ(scene):
    _, coords = scene(300, GRID, seed=4)
    plain, _ = window_partition(coords, GRID, (1, 6, 6))
    shifted, rel = window_partition(coords, GRID, (1, 6, 6), (0, 3, 3))
    same = plain[:, None] == plain[None]
    assert not torch.equal(same, shifted[:, None] == shifted[None])
    assert torch.equal(rel[:, 1:], (coords[:, 2:] + 3) % 6)


def test_rank_in_group_sort_plus_arange(scene):
    _, coords = scene(200, GRID, seed=5)
    key, in_win = window_partition(coords, GRID, (1, 6, 6))
    inner = in_window_key(in_win, (1, 6, 6), "x")
    _, rank, _, _ = sort_by_group(key, inner, 36)
    for i in range(coords.shape[0]):
        same = key == key[i]
        assert rank[i] == int((inner[same] < inner[i]).sum())


def _snake_brute(coords, grid, window, shift, axis):
    """Direct reading of the FlatFormer boustrophedon rule, as Python tuples."""
    gz, gy, gx = grid
    wy, wx = window
    keys = []
    for b, z, y, x in coords.tolist():
        y, x = y + shift[0], x + shift[1]
        if axis == "y":  # swap roles
            y, x, wy_, wx_, n_col = x, y, wx, wy, -(-gy // wy) + 1
        else:
            wy_, wx_, n_col = wy, wx, -(-gx // wx) + 1
        row, col, iy, ix = y // wy_, x // wx_, y % wy_, x % wx_
        col_rank = col if row % 2 == 0 else n_col - 1 - col
        inner = (ix, iy if ix % 2 == 0 else wy_ - 1 - iy)
        if row % 2:  # reversed in-window path on odd window rows
            inner = (-inner[0], -inner[1])
        keys.append((b, row, col_rank, *inner, z))
    return keys


@pytest.mark.parametrize("axis", ["x", "y"])
@pytest.mark.parametrize("shift", [(0, 0), (2, 3)])
def test_snake_key_order(scene, axis, shift):
    _, coords = scene(300, GRID, seed=6)
    key = snake_key(coords, GRID, (5, 6), shift, axis)
    assert key.unique().numel() == key.numel()
    brute = _snake_brute(coords, GRID, (5, 6), shift, axis)
    expected = sorted(range(len(brute)), key=lambda i: brute[i])
    assert torch.argsort(key).tolist() == expected


def test_snake_path_is_continuous_inside_windows():
    """On a full grid, consecutive voxels of one window are 4-neighbours (a boustrophedon)."""
    ys, xs = torch.meshgrid(torch.arange(12), torch.arange(12), indexing="ij")
    coords = torch.stack([torch.zeros(144), torch.zeros(144), ys.flatten(), xs.flatten()], 1)
    coords = coords.long()
    for axis in ("x", "y"):
        path = coords[torch.argsort(snake_key(coords, (1, 12, 12), (4, 4), (0, 0), axis))]
        step = (path[1:, 2:] - path[:-1, 2:]).abs().sum(1)
        same_window = ((path[1:, 2:] // 4) == (path[:-1, 2:] // 4)).all(1)
        assert (step[same_window] == 1).all()


@pytest.mark.parametrize("group_size", [1, 7, 16, 500])
def test_equal_size_groups(scene, group_size):
    # batch 1 is empty, batch 3 is tiny
    _, coords = scene(150, GRID, batches=(0, 2, 2, 2, 3), seed=group_size)
    key = snake_key(coords, GRID, (6, 6), (0, 0), "x")
    part = equal_size_groups(key, coords[:, 0], group_size)
    order = torch.argsort(key)
    idx = part.voxel_index
    assert idx.shape[1] == group_size
    counts = torch.bincount(coords[:, 0], minlength=4)
    assert part.num_groups == int(((counts + group_size - 1) // group_size).sum())
    assert torch.equal(idx.flatten()[part.home_slot], torch.arange(coords.shape[0]))
    pos = torch.empty_like(order)
    pos[order] = torch.arange(order.numel())
    sorted_pos = pos[idx]  # every group is a run of consecutive sorted positions (+ repeats)
    steps = sorted_pos[:, 1:] - sorted_pos[:, :-1]
    assert ((steps == 1) | (steps == 0)).all()
    assert (coords[idx, 0] == coords[idx[:, :1], 0]).all()  # never mixes samples
    mask = part.key_mask
    if mask is None:
        assert (steps == 1).all()
    else:
        assert torch.equal(mask[:, 1:], steps != 0) and mask[:, 0].all()
        assert group_size > int(counts[counts > 0].min())


def test_window_offsets(scene):
    _, coords = scene(200, GRID, seed=8)
    order, offsets, _ = window_offsets(coords, GRID, (1, 6, 6))
    key, _ = window_partition(coords, GRID, (1, 6, 6))
    sk = key[order]
    assert (sk[1:] >= sk[:-1]).all()
    counts = offsets[1:] - offsets[:-1]
    assert torch.equal(counts, torch.unique(key, return_counts=True)[1])
    assert torch.equal(order.sort().values, torch.arange(200))
