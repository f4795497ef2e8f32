"""Sampling of the diffusion try-on model: each DDIM step pairs the clipped x̂₀ with the ε
that is consistent with it (x_prev = √ᾱ_prev · x̂₀ + √(1 − ᾱ_prev) · ε̂), the sampling start
is the noised pre-aligned garment; the EMA weights are the ones sampled with and exported."""

import pytest
import torch
from torch import nn

from tessera.apps.tryon.module import TryOnModule, item_generator

from .conftest import TINY_NET


class ConstantEps(nn.Module):
    """A stand-in denoiser that records its inputs and predicts ε = 3 everywhere (so x̂₀
    leaves [-1, 1] at high t, the case where clipping matters)."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def garment_context(self, cond, front_only=False):
        return None

    def forward(self, x, t, agnostic, mask, prealigned, context):
        self.calls.append((x.clone(), t.clone()))
        return torch.full_like(x, 3.0)


def test_ddim_step_uses_the_epsilon_of_the_clipped_x0():
    module = TryOnModule(net=TINY_NET)
    module.model = ConstantEps()
    g = torch.Generator().manual_seed(0)
    start = torch.rand(2, 3, 8, 6, generator=g) * 2 - 1
    b = {"item_id": ["a", "b"], "agnostic": start, "mask": torch.ones(2, 1, 8, 6)}
    module.ddim_sample(b, start, steps=2, seed=5)
    (x_T, t_T), (x_1, t_1) = module.model.calls
    assert t_T.tolist() == [999, 999] and t_1.tolist() == [499, 499]
    ac = module.sample_scheduler.alphas_cumprod
    noise = torch.stack(
        [torch.randn(start.shape[1:], generator=item_generator(5, i, "cpu")) for i in "ab"]
    )
    torch.testing.assert_close(x_T, ac[999].sqrt() * start + (1 - ac[999]).sqrt() * noise)
    x0 = ((x_T - (1 - ac[999]).sqrt() * 3.0) / ac[999].sqrt()).clamp(-1, 1)
    assert (x0.abs() == 1).float().mean() > 0.9  # the raw x̂₀ was far out of range
    eps = (x_T - ac[999].sqrt() * x0) / (1 - ac[999]).sqrt()
    torch.testing.assert_close(x_1, ac[499].sqrt() * x0 + (1 - ac[499]).sqrt() * eps)


def test_ema_weights_are_averaged_used_for_sampling_and_exported(tmp_path):
    from safetensors.torch import load_file

    from tessera.apps.tryon.api import load, save_weights

    module = TryOnModule(net=TINY_NET, ema_decay=0.9)
    first = next(module.model.parameters())
    start = first.detach().clone()
    module.on_train_batch_end(None, None, 0)  # the first update copies the weights
    with torch.no_grad():
        for p in module.model.parameters():
            p.add_(1.0)
    module.on_train_batch_end(None, None, 1)
    averaged = next(module.ema.module.parameters())
    torch.testing.assert_close(averaged, start + 0.1)
    assert module.train().net is module.model and module.eval().net is module.ema.module

    path = save_weights(tmp_path / "ema.safetensors", module, (32, 24))
    assert not any(k.startswith("ema.") for k in load_file(path))
    loaded = load(path).module
    assert loaded.ema is None
    torch.testing.assert_close(next(loaded.model.parameters()), averaged)
    tuned = TryOnModule(net=TINY_NET, ema_decay=0.99, weights=str(path))  # a file without EMA
    torch.testing.assert_close(next(tuned.ema.module.parameters()), averaged)


class Oracle(nn.Module):
    """Knows the clean image ``x0``: predicts the exact ε, v or x₀ for the state it is given
    and records the ε it saw."""

    def __init__(self, x0, alphas_cumprod, prediction_type):
        super().__init__()
        self.x0, self.ac, self.prediction_type = x0, alphas_cumprod, prediction_type
        self.seen = []

    def garment_context(self, cond, front_only=False):
        return None

    def forward(self, x, t, agnostic, mask, prealigned, context):
        a = self.ac[t].view(-1, 1, 1, 1)
        eps = (x - a.sqrt() * self.x0) / (1 - a).sqrt()
        self.seen.append(eps)
        if self.prediction_type == "epsilon":
            return eps
        if self.prediction_type == "sample":
            return self.x0.expand_as(x)
        return a.sqrt() * eps - (1 - a).sqrt() * self.x0


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_exact_predictions_give_zero_loss_and_keep_ddim_on_the_image_trajectory(prediction_type):
    """With exact predictions every DDIM state is √ᾱ_t x₀ + √(1−ᾱ_t) ε for one ε, down to
    the last one at ᾱ₀ (``set_alpha_to_one=False``), for every parametrisation."""
    module = TryOnModule(net=TINY_NET, prediction_type=prediction_type, x0_l1_weight=1.0)
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(2, 3, 8, 6, generator=g) * 1.8 - 0.9
    module.model = Oracle(x0, module.train_scheduler.alphas_cumprod, prediction_type)
    b = {
        "person": x0,
        "agnostic": x0,
        "mask": torch.ones(2, 1, 8, 6),
        "prealigned": torch.zeros_like(x0),
        "item_id": ["a", "b"],
    }
    loss = module.diffusion_loss(b, torch.Generator().manual_seed(2))
    assert loss.item() < 1e-6
    module.model.seen.clear()
    out = module.ddim_sample(b, torch.zeros_like(x0), steps=10, seed=0)
    assert len(module.model.seen) == 10
    eps = module.model.seen[0]
    for seen in module.model.seen[1:]:
        torch.testing.assert_close(seen, eps, atol=1e-4, rtol=1e-4)
    a0 = module.sample_scheduler.final_alpha_cumprod
    torch.testing.assert_close(out, a0.sqrt() * x0 + (1 - a0).sqrt() * eps, atol=1e-4, rtol=0)
    assert (out - x0).abs().max() < 0.05  # ᾱ₀ = 1 − 1e-4: the image, up to 1 % of ε
    wrong = "v_prediction" if prediction_type == "epsilon" else "epsilon"
    module.model.prediction_type = wrong  # the other parametrisation's output: not zero
    assert module.diffusion_loss(b, torch.Generator().manual_seed(2)).item() > 1e-2


def test_exported_weights_keep_the_parametrisation_and_schedule(tmp_path):
    from tessera.apps.tryon.api import load, save_weights

    module = TryOnModule(
        net=TINY_NET, prediction_type="v_prediction", beta_schedule="squaredcos_cap_v2"
    )
    loaded = load(save_weights(tmp_path / "v.safetensors", module, (32, 24))).module
    assert loaded.sample_scheduler.config.prediction_type == "v_prediction"
    torch.testing.assert_close(
        loaded.sample_scheduler.alphas_cumprod, module.sample_scheduler.alphas_cumprod
    )


class OffOutsideMask(nn.Module):
    """Predicts x₀ exactly inside the mask and x₀ + 0.5 outside it."""

    def __init__(self, x0, mask):
        super().__init__()
        self.x0, self.mask = x0, mask

    def garment_context(self, cond, front_only=False):
        return None

    def forward(self, x, t, agnostic, mask, prealigned, context):
        return self.x0 + 0.5 * (1 - self.mask)


@pytest.mark.parametrize("weight", [1.0, 4.0])
def test_mask_loss_weight_weighs_the_generated_region(weight):
    """MSE 0.25 and L1 0.5 outside the mask, 0 inside: the loss is their sum times the
    share of the weight that falls outside, (1 − m) / ((1 − m) + w · m)."""
    x0 = torch.rand(2, 3, 8, 6, generator=torch.Generator().manual_seed(3)) * 0.8 - 0.4
    mask = torch.zeros(2, 1, 8, 6)
    mask[:, :, 2:6, 1:5] = 1  # m = 16 / 48 of the pixels
    module = TryOnModule(
        net=TINY_NET, prediction_type="sample", x0_l1_weight=1.0, mask_loss_weight=weight
    )
    module.model = OffOutsideMask(x0, mask)
    b = {"person": x0, "agnostic": x0, "mask": mask, "prealigned": torch.zeros_like(x0)}
    loss = module.diffusion_loss(b, torch.Generator().manual_seed(0))
    m = 16 / 48
    torch.testing.assert_close(loss, torch.tensor(0.75 * (1 - m) / ((1 - m) + weight * m)))
