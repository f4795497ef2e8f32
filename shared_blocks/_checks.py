"""Argument checks shared by the blocks: user errors raise ``ValueError`` naming the argument."""

from __future__ import annotations

import torch


def check_last_dim(name: str, t: torch.Tensor, ndim: int, size: int) -> None:
    """``t`` must have ``ndim`` dimensions and a last dimension of ``size``."""
    if t.dim() != ndim or t.shape[-1] != size:
        raise ValueError(
            f"{name} must be {ndim}-D with last dimension {size}, got shape {tuple(t.shape)}"
        )


def check_channels_first(name: str, t: torch.Tensor, spatial_dims: int, channels: int) -> None:
    """``t`` must be ``(B, channels, *spatial)`` with ``spatial_dims`` spatial dimensions."""
    if t.dim() != 2 + spatial_dims or t.shape[1] != channels:
        raise ValueError(
            f"{name} must be (B, {channels}, ...) with {spatial_dims} spatial dimensions, "
            f"got shape {tuple(t.shape)}"
        )


def check_mask(name: str, mask: torch.Tensor | None, shape: tuple[int, ...]) -> None:
    """An optional boolean mask (True = keep) of exactly ``shape``."""
    if mask is None:
        return
    if mask.dtype != torch.bool or tuple(mask.shape) != tuple(shape):
        raise ValueError(
            f"{name} must be a bool tensor of shape {tuple(shape)} (True = keep), "
            f"got {mask.dtype} of shape {tuple(mask.shape)}"
        )


def check_divisible(name: str, value: int, by: int, what: str) -> None:
    if value % by:
        raise ValueError(f"{name}={value} must be divisible by {what}={by}")
