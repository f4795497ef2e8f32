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
    assert scores.compute()["back_view_ncc_accuracy"] == 0.5
    assert "back_view_accuracy" not in scores.compute()  # no counterfactual given


def test_view_preference_compares_only_where_the_designs_differ():
    target = torch.full((3, 3, 16, 12), 0.5)
    counterfactual = target.clone()
    counterfactual[:, :, 4:8, 2:10] = 0.9  # the front design: a band the back lacks
    counterfactual[2] = target[2] + 0.05  # item 2: the designs are indistinguishable
    mask = torch.ones(3, 1, 16, 12)
    result = torch.stack([target[0] + 0.3, counterfactual[1], target[2]])
    result[0, :, 4:8, 2:10] = 0.45  # off everywhere, but the band region shows the back
    pref = metrics.view_preference(result, target, counterfactual, mask)
    assert float(pref[0]) == pytest.approx(0.45 - 0.05, abs=1e-6)
    assert float(pref[1]) == pytest.approx(-0.4, abs=1e-6) and math.isnan(float(pref[2]))
    scores = TryOnScores()
    is_back = torch.tensor([True, True, True])
    has = torch.tensor([True, True, True])
    scores.update(result, target, mask, target, counterfactual, is_back, counterfactual, has)
    assert scores.compute()["back_view_accuracy"] == 0.5  # the undecidable item is left out
    assert len(scores.values["back_view_ncc_accuracy"]) == 3


def test_the_ground_truth_scores_every_decidable_back_view_of_the_synthetic_world(tmp_path):
    """The counterfactual differs from the target only in the garment's design (same body,
    pose and sensor noise), so the exact score's ceiling is 1; the NCC proxy's is not."""
    from torch.utils.data import DataLoader

    from tessera.datamodules.tryon import TryOnDataModule
    from tessera.datamodules.tryon.synth import generate

    world = generate(tmp_path / "w", seed=5, train=0, val=0, test=6)
    data = TryOnDataModule(str(world), size=(128, 96))
    dataset = data.dataset("test", "paired", side_view="front", on_error="raise")
    scores = TryOnScores()
    for batch in DataLoader(dataset, batch_size=6):
        back = batch["view"] == 3
        assert bool(batch["has_counterfactual"][back].all())
        assert not bool(batch["has_counterfactual"][~back].any())
        scores.update(
            batch["person"], batch["person"], batch["mask"], batch["prealigned_back"],
            batch["prealigned_front"], back, batch["counterfactual"], batch["has_counterfactual"],
        )  # fmt: skip
    assert len(scores.values["back_view_accuracy"]) == 6
    decided = [v for v in scores.values["back_view_accuracy"] if not math.isnan(v)]
    assert len(decided) >= 4 and all(v == 1.0 for v in decided)
    from PIL import Image

    folder = world / "test" / "counterfactual" / "00000_3"
    turned = np.asarray(Image.open(folder / "2.jpg")).astype(int)
    person = np.asarray(Image.open(world / "test" / "image-wo-bg" / "00000_3" / "2.jpg"))
    mask = np.asarray(Image.open(world / "test" / "inpaint_mask" / "00000_3" / "2.jpg"))
    outside = mask < 128
    assert np.abs(turned - person.astype(int))[outside].mean() < 2  # JPEG only
    assert np.abs(turned - person.astype(int))[~outside].max() > 60  # the other design


class Features(torch.nn.Module):
    """A small fixed feature network standing in for Inception (no weights to download)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 6, 3, stride=2)

    def forward(self, x):
        h = torch.tanh(self.conv(x.float() * 2 - 1))
        return torch.cat([h.mean((2, 3)), x.float().std((2, 3))], 1)  # (B, 9)


def test_perceptual_scores_skip_offline_with_a_reason(monkeypatch, caplog):
    def no_weights(*args, **kwargs):
        raise FileNotFoundError("no cached weights")

    monkeypatch.setattr(metrics, "_lpips_metric", no_weights)
    monkeypatch.setattr(metrics, "_inception", no_weights)
    scores = metrics.PerceptualScores(paired=True)
    scores.update(torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8))
    assert scores.compute() == {} and set(scores.skipped) == {"lpips", "fid", "kid"}
    assert "no cached weights" in scores.skipped["fid"] and "fid skipped" in caplog.text


def test_without_cached_weights_nothing_is_downloaded(monkeypatch):
    """The real constructors under the offline guard: whatever the local caches hold, the
    result is a number from real weights or a skip with a reason — never a crash."""
    import socket

    def refuse(*args, **kwargs):
        raise OSError("no network in this test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    scores = metrics.PerceptualScores(paired=True)
    assert set(scores.metrics) | set(scores.skipped) == {"lpips", "fid", "kid"}
    for reason in scores.skipped.values():
        assert "weights not available offline" in reason


def _frechet(a: np.ndarray, b: np.ndarray) -> float:
    from scipy import linalg

    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def _kid(a: np.ndarray, b: np.ndarray) -> float:
    """Unbiased MMD² with the cubic polynomial kernel ``(x·y / d + 1)³`` (Bińkowski et al.)."""
    d, m = a.shape[1], len(a)

    def k(x, y):
        return (x @ y.T / d + 1) ** 3

    kxx, kyy, kxy = k(a, a), k(b, b), k(a, b)
    off = lambda z: (z.sum() - np.trace(z)) / (m * (m - 1))  # noqa: E731
    return float(off(kxx) + off(kyy) - 2 * kxy.mean())


def test_fid_kid_equal_their_definitions_with_a_local_feature_network():
    g = torch.Generator().manual_seed(0)
    real = torch.rand(24, 3, 12, 10, generator=g)
    fake = (real * 0.6 + 0.3 * torch.rand(24, 3, 12, 10, generator=g)).clamp(0, 1)
    features = Features()
    scores = metrics.PerceptualScores(paired=False, features=features)
    for i in range(0, 24, 8):  # accumulated batch by batch
        scores.update(real[i : i + 8], fake[i : i + 8])
    values = scores.compute()
    assert set(values) == {"fid", "kid"} and scores.skipped == {}
    with torch.no_grad():
        fr, ff = features(real).double().numpy(), features(fake).double().numpy()
    assert values["fid"] == pytest.approx(_frechet(fr, ff), rel=1e-4, abs=1e-6)
    assert values["kid"] == pytest.approx(_kid(fr, ff), rel=1e-4, abs=1e-7)  # subset = all 24
    same = metrics.PerceptualScores(paired=False, features=features)
    same.update(real, real)
    assert same.compute()["fid"] == pytest.approx(0.0, abs=1e-4)
    assert values["fid"] > 1e-2


def test_too_few_images_is_a_skip_not_a_crash():
    scores = metrics.PerceptualScores(paired=False, features=Features())
    scores.update(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))
    assert scores.compute() == {}
    assert "cannot be computed on 1 images" in scores.skipped["fid"]


def test_offline_guard_blocks_network():
    import socket

    with metrics._offline(), pytest.raises(OSError, match="network access disabled"):
        socket.create_connection(("127.0.0.1", 9), timeout=1)


def test_ssim_of_uint8_style_values_needs_data_range():
    x = torch.from_numpy(np.full((1, 3, 16, 16), 0.5, np.float32))
    assert float(ssim(x, x)) == pytest.approx(1.0)
