"""Sampling of the diffusion try-on model: each DDIM step pairs the clipped x̂₀ with the ε
that is consistent with it (x_prev = √ᾱ_prev · x̂₀ + √(1 − ᾱ_prev) · ε̂), the sampling start
is the noised pre-aligned garment; the EMA weights are the ones sampled with and exported."""

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
