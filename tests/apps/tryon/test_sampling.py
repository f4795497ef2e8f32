"""DDIM sampling of the diffusion try-on model: each step pairs the clipped x̂₀ with the ε
that is consistent with it (x_prev = √ᾱ_prev · x̂₀ + √(1 − ᾱ_prev) · ε̂), the sampling start
is the noised pre-aligned garment, and results depend on (seed, item) only."""

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
