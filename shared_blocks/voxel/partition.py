"""Index bookkeeping shared by the sparse voxel transformers: windows, sets, snake orders, groups.

Everything here is integer work on voxel coordinates, done with ``torch.sort``, ``cumsum``,
``repeat_interleave`` and ``arange`` only (no custom CUDA op such as DSVT's ``ingroup_inds``),
so the same code runs on CPU and CUDA. Nothing here has parameters or gradients.

Conventions (OpenPCDet ``voxel_coords``):
    coords: (N, 4) integer (batch, z, y, x).
    grid_shape, window_shape, shift: spatial triples in the same (z, y, x) order as ``coords``.
    Note that OpenPCDet configs write windows as (x, y, z), e.g. DSVT's ``[12, 12, 1]``.

Every sort key built here is unique per voxel (ties broken by the remaining coordinates), so
partitions depend only on the coordinates and never on the input order of the voxels; this is
what makes the blocks permutation-equivariant.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

Triple = tuple[int, int, int]


def check_voxels(features: torch.Tensor, coords: torch.Tensor, channels: int | None) -> None:
    """``features`` (N, C) float and ``coords`` (N, 4) integer on the same device."""
    if features.dim() != 2 or (channels is not None and features.shape[1] != channels):
        want = "C" if channels is None else str(channels)
        raise ValueError(f"features must be (N, {want}), got shape {tuple(features.shape)}")
    if coords.dim() != 2 or coords.shape[1] != 4 or coords.is_floating_point():
        raise ValueError(
            f"coords must be an integer (N, 4) tensor (batch, z, y, x), got {coords.dtype} "
            f"shape {tuple(coords.shape)}"
        )
    if coords.shape[0] != features.shape[0]:
        raise ValueError(f"coords has {coords.shape[0]} rows but features has {features.shape[0]}")
    if coords.device != features.device:
        raise ValueError(f"coords is on {coords.device} but features on {features.device}")


def as_triple(name: str, value: int | tuple[int, ...] | list[int]) -> Triple:
    """A positive (z, y, x) triple; a bare int means the same size on every axis."""
    triple = (value,) * 3 if isinstance(value, int) else tuple(int(v) for v in value)
    if len(triple) != 3 or min(triple) < 0:
        raise ValueError(f"{name} must be a (z, y, x) triple of non-negative ints, got {value!r}")
    return triple  # type: ignore[return-value]


def flat_voxel_key(coords: torch.Tensor, grid_shape: Triple) -> torch.Tensor:
    """(N,) int64 key ``((b*Z + z)*Y + y)*X + x``; unique per voxel, sorts in (b, z, y, x) order."""
    c = coords.long()
    z, y, x = grid_shape
    return ((c[:, 0] * z + c[:, 1]) * y + c[:, 2]) * x + c[:, 3]


def window_partition(
    coords: torch.Tensor, grid_shape: Triple, window_shape: Triple, shift: Triple = (0, 0, 0)
) -> tuple[torch.Tensor, torch.Tensor]:
    """Assign voxels to (optionally shifted) windows, as DSVT's ``get_window_coors``.

    The window of a voxel is ``(coord + shift) // window`` and its window-relative position is
    ``(coord + shift) % window``; each axis has ``ceil(grid / window) + 1`` windows (+1 for the
    shift).

    Args:
        coords: (N, 4) integer (batch, z, y, x).
        grid_shape: (Z, Y, X) size of the voxel grid.
        window_shape: (wz, wy, wx) window size in voxels.
        shift: (sz, sy, sx) shift added to the coordinates before partitioning.

    Returns:
        window_key: (N,) int64, unique per (batch, window).
        coords_in_window: (N, 3) int64 (z, y, x) inside the window.
    """
    c = coords.long()
    grid = torch.tensor(grid_shape, device=c.device)
    win = torch.tensor(window_shape, device=c.device)
    shifted = c[:, 1:] + torch.tensor(shift, device=c.device)
    win_coord = shifted // win  # (N, 3)
    n_win = (grid + win - 1) // win + 1  # (3,)
    key = c[:, 0]
    for axis in range(3):
        key = key * n_win[axis] + win_coord[:, axis]
    return key, shifted % win


def window_volume(window_shape: Triple) -> int:
    return window_shape[0] * window_shape[1] * window_shape[2]


def in_window_key(coords_in_window: torch.Tensor, window_shape: Triple, major: str) -> torch.Tensor:
    """(N,) position of a voxel in its window when sorted by y-then-x-then-z or x-then-y-then-z.

    ``major="y"`` is DSVT's Y-axis partition (key ``y*wx*wz + x*wz + z``), ``major="x"`` its
    X-axis partition (``x*wy*wz + y*wz + z``). Keys lie in ``[0, wz*wy*wx)``.
    """
    wz, wy, wx = window_shape
    z, y, x = coords_in_window.unbind(1)
    if major == "y":
        return (y * wx + x) * wz + z
    if major == "x":
        return (x * wy + y) * wz + z
    raise ValueError(f"major must be 'x' or 'y', got {major!r}")


def sort_by_group(group_key: torch.Tensor, inner_key: torch.Tensor, inner_range: int):
    """Sort voxels by (group, inner key) and rank them inside their group.

    The in-group rank is ``arange(N) - group_start[group]`` on the sorted order: the sort +
    arange replacement for DSVT's CUDA ``ingroup_inds`` op.

    Args:
        group_key: (N,) int64 group of each voxel (any values).
        inner_key: (N,) int64 order inside a group, in ``[0, inner_range)``, unique per group.
        inner_range: exclusive upper bound of ``inner_key``.

    Returns:
        order: (N,) voxel indices in sorted order.
        rank: (N,) rank of each voxel (input order) inside its group.
        counts: (G,) voxels per group, groups in ascending ``group_key`` order.
        group: (N,) contiguous group index of each voxel (input order).
    """
    _, group, counts = torch.unique(group_key, return_inverse=True, return_counts=True)
    order = torch.argsort(group * inner_range + inner_key)
    starts = torch.cumsum(counts, 0) - counts
    sorted_rank = torch.arange(group.numel(), device=group.device) - starts[group[order]]
    rank = torch.empty_like(sorted_rank)
    rank[order] = sorted_rank
    return order, rank, counts, group


@dataclass(frozen=True)
class SetPartition:
    """Equal-size sets of one window configuration and one sort axis (DSVT Eq. 3).

    Attributes:
        voxel_index: (S, tau) int64 voxel index of every set slot.
        key_mask: (S, tau) bool, True = keep; False marks a repeat of the previous slot's voxel.
        set_window: (S,) contiguous window index of every set.
        home_slot: (N,) flat slot (``set * tau + k``) of each voxel's first, unmasked occurrence;
            scatter-back reads each voxel's output from this slot.
    """

    voxel_index: torch.Tensor
    key_mask: torch.Tensor
    set_window: torch.Tensor
    home_slot: torch.Tensor

    @property
    def num_sets(self) -> int:
        return self.voxel_index.shape[0]


def dynamic_set_partition(
    window_key: torch.Tensor, inner_key: torch.Tensor, inner_range: int, set_size: int
) -> SetPartition:
    """DSVT dynamic set partition (Wang et al., CVPR 2023, arXiv:2301.06051, Eq. 3).

    A window with n voxels, sorted by ``inner_key``, gets ``S = ceil(n / tau)`` sets; slot k of
    set j holds the voxel at sorted position ``floor((j*tau + k) * n / (S*tau))``. Windows with
    n not a multiple of tau therefore repeat voxels instead of padding; repeats are consecutive
    (a voxel never spans two sets, since ``n / (S*tau) > (S-1)/S``) and every repeat slot is
    masked as a key. The index is computed in exact integer arithmetic.

    Scatter-back rule: each voxel has exactly one unmasked slot (its first occurrence) and reads
    its output there. A repeated slot sees the same query and the same keys as that first slot,
    so the choice is exact, and the map back is a permutation (deterministic, no atomics).

    Args:
        window_key: (N,) window of each voxel (from :func:`window_partition`).
        inner_key: (N,) unique order of the voxel inside its window (:func:`in_window_key`).
        inner_range: exclusive bound of ``inner_key`` (the window volume).
        set_size: tau, voxels per set.
    """
    if set_size < 1:
        raise ValueError(f"set_size must be >= 1, got {set_size}")
    device = window_key.device
    order, _, counts, _ = sort_by_group(window_key, inner_key, inner_range)
    starts = torch.cumsum(counts, 0) - counts
    sets_per_window = (counts + set_size - 1) // set_size
    n_sets = int(sets_per_window.sum())
    set_window = torch.repeat_interleave(
        torch.arange(counts.numel(), device=device), sets_per_window, output_size=n_sets
    )
    first_set = torch.cumsum(sets_per_window, 0) - sets_per_window
    set_in_window = torch.arange(n_sets, device=device) - first_set[set_window]  # j
    n = counts[set_window][:, None]  # (S, 1)
    slots = set_in_window[:, None] * set_size + torch.arange(set_size, device=device)  # j*tau + k
    pos = slots * n // (sets_per_window[set_window][:, None] * set_size)  # (S, tau), Eq. 3
    voxel_index = order[starts[set_window][:, None] + pos]
    key_mask = torch.ones_like(pos, dtype=torch.bool)
    key_mask[:, 1:] = pos[:, 1:] != pos[:, :-1]
    home_slot = torch.empty_like(order)
    home_slot[voxel_index[key_mask]] = torch.nonzero(key_mask.flatten()).squeeze(1)
    return SetPartition(voxel_index, key_mask, set_window, home_slot)


def snake_key(
    coords: torch.Tensor,
    grid_shape: Triple,
    window_shape: tuple[int, int],
    shift: tuple[int, int],
    axis: str,
) -> torch.Tensor:
    """FlatFormer window-based boustrophedon sort key (Liu et al., CVPR 2023, arXiv:2301.08739).

    ``axis="x"``: windows are visited row by row (y major) with x running forwards on even rows
    and backwards on odd ones; inside a window the voxels are visited column by column (x major)
    with y snaking, and the whole in-window path is reversed in odd window rows, so consecutive
    keys stay spatially adjacent. This is the order of the official ``FlattenedWindowMapping``
    key ``vx`` (written here without negative terms). ``axis="y"`` swaps the roles of x and y.
    z and batch break ties (batch most significant, z least), so the key is unique per voxel.

    Args:
        coords: (N, 4) integer (batch, z, y, x).
        grid_shape: (Z, Y, X) grid size.
        window_shape: (wy, wx) window size.
        shift: (sy, sx) added to the coordinates before windowing (half a window for the shifted
            orders).
        axis: ``"x"`` or ``"y"``.

    Returns:
        (N,) int64 sort key.
    """
    c = coords.long()
    gz, gy, gx = grid_shape
    wy, wx = window_shape
    y, x = c[:, 2] + shift[0], c[:, 3] + shift[1]
    n_wy, n_wx = -(-gy // wy) + 1, -(-gx // wx) + 1
    if axis == "x":
        row, col, n_col, w_row, w_col = y // wy, x // wx, n_wx, wy, wx
        in_row, in_col = y % wy, x % wx
    elif axis == "y":
        row, col, n_col, w_row, w_col = x // wx, y // wy, n_wy, wx, wy
        in_row, in_col = x % wx, y % wy
    else:
        raise ValueError(f"axis must be 'x' or 'y', got {axis!r}")
    odd_row = row % 2 == 1
    window_rank = row * n_col + torch.where(odd_row, n_col - 1 - col, col)
    inner = in_col * w_row + torch.where(in_col % 2 == 1, w_row - 1 - in_row, in_row)
    inner = torch.where(odd_row, w_row * w_col - 1 - inner, inner)
    n_windows = (n_wy * n_wx) * w_row * w_col
    return ((c[:, 0] * n_windows + window_rank * w_row * w_col + inner) * gz) + c[:, 1]


@dataclass(frozen=True)
class GroupPartition:
    """Equal-size groups cut from a sorted voxel sequence (FlatFormer ``flat2win``/``win2flat``).

    Attributes:
        voxel_index: (G, group_size) int64 voxel index of every group slot.
        key_mask: (G, group_size) bool True = keep, or None when no slot repeats a voxel.
        home_slot: (N,) flat slot each voxel reads its output from.
    """

    voxel_index: torch.Tensor
    key_mask: torch.Tensor | None
    home_slot: torch.Tensor

    @property
    def num_groups(self) -> int:
        return self.voxel_index.shape[0]


def equal_size_groups(key: torch.Tensor, batch: torch.Tensor, group_size: int) -> GroupPartition:
    """Sort voxels by ``key`` and cut every sample into groups of exactly ``group_size``.

    A sample with n voxels gets ``ceil(n / group_size)`` groups; the last one is the sample's
    last ``group_size`` voxels, so it overlaps the previous group (the official code fills the
    tail by repeating the previous group's tail, the same voxels). A sample smaller than one
    group repeats its last voxel to fill the group and those repeats are masked as keys. Each
    voxel reads its output from its first group (``win2flat``).

    Args:
        key: (N,) int64 unique sort key whose most significant part is the batch index.
        batch: (N,) batch index of each voxel.
        group_size: voxels per group.
    """
    if group_size < 1:
        raise ValueError(f"group_size must be >= 1, got {group_size}")
    device = key.device
    order = torch.argsort(key)
    _, counts = torch.unique_consecutive(batch[order], return_counts=True)
    starts = torch.cumsum(counts, 0) - counts
    groups_per_sample = (counts + group_size - 1) // group_size
    n_groups = int(groups_per_sample.sum())
    group_sample = torch.repeat_interleave(
        torch.arange(counts.numel(), device=device), groups_per_sample, output_size=n_groups
    )
    first_group = torch.cumsum(groups_per_sample, 0) - groups_per_sample
    j = torch.arange(n_groups, device=device) - first_group[group_sample]
    n = counts[group_sample]
    last = j == groups_per_sample[group_sample] - 1
    local_start = torch.where(last, (n - group_size).clamp(min=0), j * group_size)  # (G,)
    local = local_start[:, None] + torch.arange(group_size, device=device)  # (G, gs)
    valid = local < n[:, None]
    voxel_index = order[starts[group_sample][:, None] + torch.minimum(local, n[:, None] - 1)]
    # Home slot of sorted position p (local l): group min(l // gs, last), slot l - group start.
    sample = torch.repeat_interleave(
        torch.arange(counts.numel(), device=device), counts, output_size=key.numel()
    )
    l_pos = torch.arange(key.numel(), device=device) - starts[sample]
    home_group = first_group[sample] + torch.minimum(
        l_pos // group_size, groups_per_sample[sample] - 1
    )
    home_slot = torch.empty_like(order)
    home_slot[order] = home_group * group_size + l_pos - local_start[home_group]
    return GroupPartition(voxel_index, None if bool(valid.all()) else valid, home_slot)


def window_offsets(
    coords: torch.Tensor, grid_shape: Triple, window_shape: Triple
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ScatterFormer layout: voxels sorted by (batch, window), plus window boundaries.

    Inside a window voxels are ordered by (z, y, x) so the layout is canonical.

    Returns:
        order: (N,) voxel indices in sorted order.
        offsets: (W + 1,) int64 boundaries of the W non-empty windows in sorted order.
        coords_in_window: (N, 3) (z, y, x) window-relative coordinates (input order).
    """
    window_key, in_win = window_partition(coords, grid_shape, window_shape)
    wz, wy, wx = window_shape
    inner = (in_win[:, 0] * wy + in_win[:, 1]) * wx + in_win[:, 2]
    order, _, counts, _ = sort_by_group(window_key, inner, window_volume(window_shape))
    offsets = torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])
    return order, offsets, in_win
