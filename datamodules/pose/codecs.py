"""Heatmap codecs: keypoints in crop pixels ↔ K Gaussian heatmaps (as mmpose's
``MSRAHeatmap`` and ``UDPHeatmap``).

- ``MSRAHeatmap`` (Xiao et al., SimpleBaseline, ECCV 2018): stride ``s = input / heatmap``;
  the Gaussian sits at the rounded heatmap position (``unbiased=False``) or at the exact one
  (``unbiased=True``, DARK: Zhang et al., CVPR 2020); decoding takes the argmax and moves it a
  quarter pixel towards the higher neighbour, or applies DARK's Taylor step on the
  log-blurred heatmap; then multiplies by ``s``.
- ``UDPHeatmap`` (Huang et al., CVPR 2020): ``s = (input - 1) / (heatmap - 1)``, Gaussian at
  the exact sub-pixel position, DARK refinement on decode.

Shapes: keypoints ``(K, 2)`` in crop pixels (x, y), heatmaps ``(K, H, W)``.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter


def _gaussians(
    mu: np.ndarray, weights: np.ndarray, size, sigma: float, exact: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussians of radius 3σ at heatmap positions ``mu (K, 2)``; weight 0 when the window
    falls fully outside the heatmap."""
    w, h = size
    k = len(mu)
    heatmaps = np.zeros((k, h, w), dtype=np.float32)
    weights = weights.astype(np.float32).copy()
    radius = 3 * sigma
    xs, ys = np.arange(w), np.arange(h)
    for j in range(k):
        if weights[j] <= 0:
            continue
        centre = np.floor(mu[j] + 0.5)  # rounded position
        lo, hi = centre - radius, centre + radius + 1
        if lo[0] >= w or lo[1] >= h or hi[0] < 0 or hi[1] < 0 or not np.isfinite(mu[j]).all():
            weights[j] = 0.0
            continue
        peak = mu[j] if exact else centre
        gx = np.exp(-((xs - peak[0]) ** 2) / (2 * sigma**2))
        gy = np.exp(-((ys - peak[1]) ** 2) / (2 * sigma**2))
        # Only inside the 3σ window around the rounded centre, as the reference does.
        gx[(xs < lo[0]) | (xs >= hi[0])] = 0
        gy[(ys < lo[1]) | (ys >= hi[1])] = 0
        heatmaps[j] = np.outer(gy, gx)
    return heatmaps, weights


def heatmap_maximum(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer argmax ``(K, 2)`` (x, y) and peak values ``(K,)``; ``-1`` where the peak ≤ 0."""
    k, h, w = heatmaps.shape
    flat = heatmaps.reshape(k, -1)
    idx = flat.argmax(axis=1)
    scores = flat[np.arange(k), idx]
    locs = np.stack([idx % w, idx // w], axis=1).astype(np.float64)
    locs[scores <= 0] = -1
    return locs, scores


def refine_quarter_offset(locs: np.ndarray, heatmaps: np.ndarray) -> np.ndarray:
    """Move each argmax ¼ pixel towards its higher neighbour (per axis)."""
    out = locs.copy()
    _, h, w = heatmaps.shape
    for j, (x, y) in enumerate(locs.astype(int)):
        if 0 < x < w - 1 and 0 <= y < h:
            out[j, 0] += 0.25 * np.sign(heatmaps[j, y, x + 1] - heatmaps[j, y, x - 1])
        if 0 < y < h - 1 and 0 <= x < w:
            out[j, 1] += 0.25 * np.sign(heatmaps[j, y + 1, x] - heatmaps[j, y - 1, x])
    return out


def blur_sigma(kernel: int) -> float:
    """The σ OpenCV uses for a ``kernel × kernel`` Gaussian with σ=0 (11 → 2.0, 17 → 2.9)."""
    return 0.3 * ((kernel - 1) * 0.5 - 1) + 0.8


def refine_dark(locs: np.ndarray, heatmaps: np.ndarray, kernel: int = 11) -> np.ndarray:
    """DARK: blur (zero border, peak preserved), take logs, one Newton step
    ``-H⁻¹ ∇`` at the integer maximum (derivatives by central differences)."""
    out = locs.copy()
    sigma = blur_sigma(kernel)
    radius = (kernel - 1) // 2
    _, h, w = heatmaps.shape
    for j, (x, y) in enumerate(locs.astype(int)):
        if x < 0:
            continue
        hm = heatmaps[j].astype(np.float64)
        peak = hm.max()
        blurred = gaussian_filter(hm, sigma, mode="constant", cval=0.0, truncate=radius / sigma)
        if blurred.max() > 0:
            blurred *= peak / blurred.max()
        logh = np.log(np.maximum(blurred, 1e-10))
        if not (2 <= x < w - 2 and 2 <= y < h - 2):
            continue
        dx = 0.5 * (logh[y, x + 1] - logh[y, x - 1])
        dy = 0.5 * (logh[y + 1, x] - logh[y - 1, x])
        dxx = 0.25 * (logh[y, x + 2] - 2 * logh[y, x] + logh[y, x - 2])
        dyy = 0.25 * (logh[y + 2, x] - 2 * logh[y, x] + logh[y - 2, x])
        dxy = 0.25 * (
            logh[y + 1, x + 1] - logh[y - 1, x + 1] - logh[y + 1, x - 1] + logh[y - 1, x - 1]
        )
        hess = np.array([[dxx, dxy], [dxy, dyy]])
        if abs(np.linalg.det(hess)) > 1e-12:
            out[j] -= np.linalg.solve(hess, np.array([dx, dy]))
    return out


class MSRAHeatmap:
    """SimpleBaseline heatmaps (see the module docstring).

    Args:
        input_size: crop ``(W, H)``.
        heatmap_size: heatmap ``(W, H)``.
        sigma: Gaussian σ in heatmap pixels.
        unbiased: DARK encoding/decoding instead of rounding + quarter offset.
        blur_kernel_size: DARK's blur kernel (11 for σ=2, 17 for σ=3).
    """

    def __init__(
        self,
        input_size,
        heatmap_size,
        sigma: float = 2.0,
        unbiased: bool = False,
        blur_kernel_size: int = 11,
    ):
        self.input_size = tuple(int(v) for v in input_size)
        self.heatmap_size = tuple(int(v) for v in heatmap_size)
        self.sigma, self.unbiased, self.blur_kernel_size = sigma, unbiased, blur_kernel_size
        self.stride = np.array(self.input_size, dtype=np.float64) / np.array(self.heatmap_size)

    def encode(self, keypoints: np.ndarray, weights: np.ndarray):
        """→ heatmaps ``(K, H, W)`` float32, keypoint weights ``(K,)`` (0 = no target)."""
        return _gaussians(
            np.asarray(keypoints) / self.stride,
            np.asarray(weights),
            self.heatmap_size,
            self.sigma,
            exact=self.unbiased,
        )

    def decode(self, heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """→ keypoints ``(K, 2)`` in crop pixels, scores ``(K,)`` (the heatmap peaks)."""
        locs, scores = heatmap_maximum(heatmaps)
        if self.unbiased:
            locs = refine_dark(locs, heatmaps, self.blur_kernel_size)
        else:
            locs = refine_quarter_offset(locs, heatmaps)
        return locs * self.stride, scores


class UDPHeatmap(MSRAHeatmap):
    """Unbiased data processing heatmaps: stride ``(input - 1) / (heatmap - 1)``, exact
    Gaussian centres, DARK refinement (see the module docstring)."""

    def __init__(self, input_size, heatmap_size, sigma: float = 2.0, blur_kernel_size: int = 11):
        super().__init__(input_size, heatmap_size, sigma, True, blur_kernel_size)
        self.stride = (np.array(self.input_size, dtype=np.float64) - 1) / (
            np.array(self.heatmap_size) - 1
        )


CODECS = {"msra": MSRAHeatmap, "udp": UDPHeatmap}


def build_codec(name: str, input_size, heatmap_size, sigma: float = 2.0, **kwargs):
    """``msra`` | ``udp`` codec (``unbiased=True`` with ``msra`` gives DARK)."""
    if name not in CODECS:
        raise ValueError(f"codec must be one of {sorted(CODECS)}, got {name!r}")
    return CODECS[name](input_size, heatmap_size, sigma, **kwargs)
