"""Try-on metrics.

Offline, always: ``ssim`` (Wang et al. 2004; 11×11 Gaussian window σ = 1.5, K = (0.01, 0.03),
data range 1, as torchmetrics' ``StructuralSimilarityIndexMeasure(data_range=1.0)`` used by
LaDI-VTON's evaluation), ``psnr`` (per image, data range 1), ``masked_l1`` (mean absolute error
over the inpainting-mask pixels, the garment region) and two view-selection scores over
back-view persons:

- ``back_view_accuracy`` (exact; where the data has counterfactual renderings, as the
  synthetic world does): share of persons whose result is closer to the target (wearing the
  back design) than to the same person wearing the garment back to front
  (:func:`view_preference`);
- ``back_view_ncc_accuracy`` (any data with a back garment, paired or unpaired): share whose
  result correlates better with the pre-aligned back garment than with the front one inside
  the mask (:func:`pattern_preference`). A proxy: the box-fitted pre-aligned garments do not
  sit where the worn pattern does, and on the synthetic test splits the ground truth itself
  scores only 0.6 on it.

With network weights (optional, never downloaded): LPIPS (AlexNet, ``normalize=True``), FID
and KID (torch-fidelity's Inception) through torchmetrics, accumulated batch by batch
(:class:`PerceptualScores`). When the weights are not in the
local caches the metric is skipped and the reason logged — never a crash, never a number.
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image SSIM ``(B,)`` of ``(B, C, H, W)`` images (valid-region mean, as torchmetrics
    and pytorch-msssim; scikit-image's ``gaussian_weights=True`` differs only at borders)."""
    c = pred.shape[1]
    g = _gaussian_window().to(pred.device, torch.float64)
    win = (g[:, None] * g[None, :]).expand(c, 1, -1, -1)
    x, y = pred.double(), target.double()

    def blur(z):
        return F.conv2d(z, win, groups=c)

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    num = (2 * mx * my + c1) * (2 * sxy + c2)
    den = (mx**2 + my**2 + c1) * (sxx + syy + c2)
    return (num / den).mean((1, 2, 3)).float()


def psnr(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image PSNR ``(B,)`` in dB (inf for identical images)."""
    mse = ((pred.double() - target.double()) ** 2).mean((1, 2, 3))
    return (10 * torch.log10(data_range**2 / mse)).float()


def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-image mean |pred − target| over mask pixels ``(B,)``; NaN for an empty mask."""
    m = mask.expand_as(pred).double()
    total = ((pred.double() - target.double()).abs() * m).sum((1, 2, 3))
    count = m.sum((1, 2, 3))
    return torch.where(count > 0, total / count.clamp_min(1), torch.nan).float()


def masked_ncc(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-image normalised cross-correlation of ``a`` and ``b`` inside ``mask`` ``(B,)``
    (each image centred on its own masked mean, over all channels)."""
    m = mask.expand_as(a).double()
    n = m.sum((1, 2, 3)).clamp_min(1)

    def centred(z):
        z = z.double()
        return (z - (z * m).sum((1, 2, 3), keepdim=True) / n.view(-1, 1, 1, 1)) * m

    ca, cb = centred(a), centred(b)
    den = (ca.pow(2).sum((1, 2, 3)) * cb.pow(2).sum((1, 2, 3))).sqrt().clamp_min(1e-12)
    return ((ca * cb).sum((1, 2, 3)) / den).float()


def pattern_preference(result, back, front, mask) -> torch.Tensor:
    """``ncc(result, back) − ncc(result, front)`` in the garment region ``(B,)``: positive
    when the result shows the back garment's pattern (``back``/``front``: each garment
    pre-aligned onto the person)."""
    return masked_ncc(result, back, mask) - masked_ncc(result, front, mask)


def view_preference(
    result, target, counterfactual, mask, threshold: float = 0.1, min_share: float = 0.01
) -> torch.Tensor:
    """``L1(result, counterfactual) − L1(result, target)`` over the mask pixels where
    ``target`` (the person in the back design) and ``counterfactual`` (the same person in
    the front design) differ by more than ``threshold`` in some channel ``(B,)``: positive
    when the result shows the back design. NaN (undecidable) where they differ on fewer
    than ``min_share`` of the mask pixels (e.g. a design drawn in nearly the base colour)."""
    differ = (target - counterfactual).abs().amax(1, keepdim=True) > threshold
    region = (differ & (mask > 0.5)).float()
    decidable = region.sum((1, 2, 3)) >= min_share * (mask > 0.5).sum((1, 2, 3)).clamp_min(1)
    pref = masked_l1(result, counterfactual, region) - masked_l1(result, target, region)
    return torch.where(decidable, pref, torch.nan)


class TryOnScores:
    """Accumulates per-item metrics; ``compute()`` returns their means (NaNs ignored)."""

    def __init__(self):
        self.values: dict[str, list[float]] = {}

    def add(self, key: str, values: torch.Tensor | list[float]) -> None:
        values = values.tolist() if torch.is_tensor(values) else list(values)
        self.values.setdefault(key, []).extend(float(v) for v in values)

    def update(
        self,
        pred,
        target,
        mask,
        back=None,
        front=None,
        is_back=None,
        counterfactual=None,
        has_counterfactual=None,
    ) -> dict:
        """Add one batch (images in [0, 1]); returns the per-item values. The view scores
        need ``is_back`` and the pre-aligned ``back``/``front`` garments (NCC proxy) or the
        ``counterfactual`` renderings with their ``has_counterfactual`` flags (exact)."""
        items = {
            "ssim": ssim(pred, target),
            "psnr": psnr(pred, target),
            "masked_l1": masked_l1(pred, target, mask),
        }
        for key, value in items.items():
            self.add(key, value)
        if back is not None and is_back is not None and bool(is_back.any()):
            pref = pattern_preference(pred[is_back], back[is_back], front[is_back], mask[is_back])
            self.add("back_view_ncc_accuracy", (pref > 0).float())
            self.add("back_view_ncc_margin", pref)
        exact = None if has_counterfactual is None else is_back & has_counterfactual
        if exact is not None and bool(exact.any()):
            pref = view_preference(pred[exact], target[exact], counterfactual[exact], mask[exact])
            self.add("back_view_accuracy", torch.where(pref.isnan(), pref, (pref > 0).float()))
            self.add("back_view_margin", pref)
        return items

    def compute(self) -> dict[str, float]:
        out = {}
        for key, values in self.values.items():
            finite = [v for v in values if math.isfinite(v)]
            if finite:
                out[key] = sum(finite) / len(finite)
        return out


class PerceptualScores:
    """LPIPS (paired only), FID and KID accumulated batch by batch, each only when its
    network weights are available offline; otherwise skipped with the reason logged (never
    downloaded, never a made-up number).

    FID/KID use torch-fidelity's FID Inception (2048-d pool features, images quantised to
    uint8 as torchmetrics does), LPIPS AlexNet with ``normalize=True`` (LaDI-VTON's
    evaluation); ``kid`` is the raw MMD (CatVTON's tables report KID × 1000).

    Args:
        paired: LPIPS compares each result with its ground truth (paired setting only).
        features: a feature network ``(B, 3, H, W) [0, 1] → (B, D)`` replacing Inception
            for FID/KID (tests, or another backbone).
        inception_weights: a local copy of torch-fidelity's
            ``weights-inception-2015-12-05-6726825d.pth`` (used instead of the cache).
        kid_subset_size: KID subset size (clean-fid / torchmetrics: 1000), capped at the
            number of images.
    """

    def __init__(
        self,
        paired: bool,
        features: torch.nn.Module | None = None,
        inception_weights: str | None = None,
        kid_subset_size: int = 1000,
    ):
        self.metrics: dict = {}
        self.skipped: dict[str, str] = {}
        self.kid_subset_size = kid_subset_size
        self.count = 0
        if paired:
            self._build("lpips", _lpips_metric)
        if features is None:
            try:
                features = _inception(inception_weights)
            except Exception as err:  # missing weights: torch-fidelity tries to download
                for name in ("fid", "kid"):
                    self._skip(name, _reason(err))
        if features is not None:
            self._build("fid", lambda: _fid_metric(features))
            self._build("kid", lambda: _kid_metric(features, kid_subset_size))

    def _build(self, name: str, build) -> None:
        try:
            with _offline():
                self.metrics[name] = build()
        except Exception as err:
            self._skip(name, _reason(err))

    def _skip(self, name: str, reason: str) -> None:
        self.skipped[name] = reason
        log.warning("%s skipped: %s", name, reason)

    @torch.no_grad()
    def update(self, real: torch.Tensor, fake: torch.Tensor) -> None:
        """One batch of ground-truth / reference images and results ``(B, 3, H, W)`` in
        [0, 1] (unpaired: ``real`` is the reference set, e.g. the test persons)."""
        real, fake = real.float().clamp(0, 1), fake.float().clamp(0, 1)
        self.count += len(fake)
        for name, metric in self.metrics.items():
            if name == "lpips":
                metric.update(fake, real)
            else:
                metric.update(real, real=True)
                metric.update(fake, real=False)

    def compute(self) -> dict[str, float]:
        values = {}
        for name, metric in self.metrics.items():
            if name == "kid":
                metric.subset_size = min(self.kid_subset_size, self.count)
            try:
                value = metric.compute()
                value = float(value[0] if isinstance(value, tuple) else value)
                if not math.isfinite(value):
                    raise ValueError(f"{name} is {value}")
            except (ValueError, RuntimeError) as err:  # e.g. fewer than 2 images
                self._skip(name, f"cannot be computed on {self.count} images ({err})")
                continue
            values[name] = value
        return values


def _reason(err: Exception) -> str:
    return f"weights not available offline ({err.__class__.__name__}: {str(err)[:160]})"


def _offline():
    """Context where any attempt to download raises instead of reaching the network."""
    import contextlib
    import socket

    @contextlib.contextmanager
    def guard():
        original = socket.socket.connect

        def refuse(*args, **kwargs):
            raise OSError("network access disabled: metric weights must be in the local cache")

        socket.socket.connect = refuse
        try:
            yield
        finally:
            socket.socket.connect = original

    return guard()


def _lpips_metric():
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    return LearnedPerceptualImagePatchSimilarity(net_type="alex", normalize=True)


class _Uint8Features(torch.nn.Module):
    """torch-fidelity's Inception takes uint8 images: quantise [0, 1] floats first."""

    def __init__(self, net: torch.nn.Module, num_features: int = 2048):
        super().__init__()
        self.net, self.num_features = net, num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x * 255).byte()).reshape(len(x), -1)


def _inception(weights_path: str | None) -> torch.nn.Module:
    from torchmetrics.image.fid import NoTrainInceptionV3

    with _offline():
        net = NoTrainInceptionV3(
            name="inception-v3-compat",
            features_list=["2048"],
            feature_extractor_weights_path=weights_path,
        )
    return _Uint8Features(net)


def _fid_metric(features: torch.nn.Module):
    from torchmetrics.image.fid import FrechetInceptionDistance

    return FrechetInceptionDistance(feature=features, normalize=True)


def _kid_metric(features: torch.nn.Module, subset_size: int):
    from torchmetrics.image.kid import KernelInceptionDistance

    return KernelInceptionDistance(feature=features, subset_size=subset_size, normalize=True)
