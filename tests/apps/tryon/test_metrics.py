"""Metrics against reference libraries on the same inputs, edge cases, and the optional
perceptual metrics (skipped offline with a reason; wiring checked with a local network)."""

import math

import numpy as np
import pytest
import torch
from pytorch_msssim import ssim as msssim_ssim
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from torchmetrics.image import StructuralSimilarityIndexMeasure

from tessera.apps.tryon import metrics
from tessera.apps.tryon.metrics import TryOnScores, masked_l1, masked_ncc, psnr, ssim


@pytest.fixture
def pair():
    g = torch.Generator().manual_seed(0)
    target = torch.rand(2, 3, 40, 30, generator=g)
    pred = (target + 0.1 * torch.randn(2, 3, 40, 30, generator=g)).clamp(0, 1)
    return pred, target


def test_ssim_matches_pytorch_msssim_and_torchmetrics(pair):
    pred, target = pair
    ours = ssim(pred, target)
    ref = msssim_ssim(pred, target, data_range=1.0, size_average=False)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
    tm = StructuralSimilarityIndexMeasure(data_range=1.0)(pred, target)
    assert abs(float(ours.mean()) - float(tm)) < 2e-3  # torchmetrics also scores the border


def test_ssim_close_to_scikit_image(pair):
    pred, target = pair
    ref = structural_similarity(
        target[0].permute(1, 2, 0).numpy(),
        pred[0].permute(1, 2, 0).numpy(),
        data_range=1.0,
        channel_axis=2,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
    )
    # scikit-image averages over the full image with reflected borders, we over valid windows
    assert abs(float(ssim(pred[:1], target[:1])) - ref) < 0.02
    assert float(ssim(target, target).min()) == pytest.approx(1.0)


def test_psnr_matches_scikit_image(pair):
    pred, target = pair
    ref = [
        peak_signal_noise_ratio(t.numpy(), p.numpy(), data_range=1.0)
        for p, t in zip(pred, target, strict=True)
    ]
    torch.testing.assert_close(psnr(pred, target), torch.tensor(ref, dtype=torch.float32))
    assert math.isinf(float(psnr(target, target)[0]))


def test_masked_l1_brute_force_and_empty_mask(pair):
    pred, target = pair
    mask = torch.zeros(2, 1, 40, 30)
    mask[0, :, 5:20, 3:9] = 1
    out = masked_l1(pred, target, mask)
    sel = mask[0, 0].bool()
    brute = (pred[0] - target[0]).abs()[:, sel].mean()
    assert float(out[0]) == pytest.approx(float(brute), abs=1e-6)
    assert math.isnan(float(out[1]))
    scores = TryOnScores()
    scores.update(pred, target, mask)
    assert scores.compute()["masked_l1"] == pytest.approx(float(brute), abs=1e-6)


def test_pattern_correlation_prefers_the_shown_garment():
    g = torch.Generator().manual_seed(1)
    back, front = torch.rand(1, 3, 16, 12, generator=g), torch.rand(1, 3, 16, 12, generator=g)
    mask = torch.ones(1, 1, 16, 12)
    noisy_back = back + 0.2 * torch.randn(1, 3, 16, 12, generator=g)
    assert float(masked_ncc(back, back, mask)) == pytest.approx(1.0, abs=1e-5)
    assert float(metrics.pattern_preference(noisy_back, back, front, mask)) > 0.5
    scores = TryOnScores()
    is_back = torch.tensor([True])
    scores.update(noisy_back, back, mask, back, front, is_back)
    scores.update(front, back, mask, back, front, is_back)
    assert scores.compute()["back_view_accuracy"] == 0.5


def test_perceptual_metrics_skip_offline_with_a_reason(monkeypatch, caplog):
    def no_weights(*args, **kwargs):
        raise FileNotFoundError("no cached weights")

    monkeypatch.setattr(metrics, "_lpips", no_weights)
    monkeypatch.setattr(metrics, "_fidelity", no_weights)
    values, skipped = metrics.perceptual_metrics(
        torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8), True
    )
    assert values == {} and set(skipped) == {"lpips", "fid", "kid"}
    assert "no cached weights" in skipped["fid"] and "fid skipped" in caplog.text


def test_unpaired_never_reports_lpips(monkeypatch):
    monkeypatch.setattr(metrics, "_fidelity", lambda name, real, fake: 1.0)
    values, skipped = metrics.perceptual_metrics(
        torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8), False
    )
    assert values == {"fid": 1.0, "kid": 1.0} and skipped == {}


def test_fid_kid_wiring_with_a_local_feature_network():
    """torchmetrics' FID/KID on the same images with a small local feature extractor: the
    distance of a set to itself is ~0 and grows when the sets differ."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    class Features(torch.nn.Module):
        def forward(self, x):
            x = x.float() / 255 if x.dtype == torch.uint8 else x
            return torch.cat([x.mean((2, 3)), x.std((2, 3))], 1).double()

    g = torch.Generator().manual_seed(0)
    real = torch.rand(16, 3, 8, 8, generator=g)
    far = (real * 0.3 + 0.7).clamp(0, 1)

    def fid(a, b):
        metric = FrechetInceptionDistance(feature=Features(), normalize=True)
        metric.update(a, real=True)
        metric.update(b, real=False)
        return float(metric.compute())

    assert fid(real, real) == pytest.approx(0.0, abs=1e-6)
    assert fid(real, far) > fid(real, real) + 0.01


def test_offline_guard_blocks_network():
    import socket

    with metrics._offline(), pytest.raises(OSError, match="network access disabled"):
        socket.create_connection(("127.0.0.1", 9), timeout=1)


def test_ssim_of_uint8_style_values_needs_data_range():
    x = torch.from_numpy(np.full((1, 3, 16, 16), 0.5, np.float32))
    assert float(ssim(x, x)) == pytest.approx(1.0)
