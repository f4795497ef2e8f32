"""Contract every registered block meets: build by name, forward/backward, fp64 gradcheck,
determinism, shape errors, and torch.compile parity. One or more tiny cases per block; a block
registered without a case fails ``test_every_registered_block_has_a_case``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch

import tessera.shared_blocks as sb
from tessera.shared_blocks import BLOCKS


@dataclass
class Case:
    id: str
    type: str
    kwargs: dict
    # dtype -> (positional inputs, keyword inputs)
    inputs: Callable[[torch.dtype], tuple[tuple, dict]]


def _rand(*shape, dtype):
    return torch.randn(*shape, dtype=dtype)


def _deform_inputs(dtype):
    shapes = torch.tensor([[2, 3, 4], [1, 2, 2]], dtype=torch.int64)
    start = torch.tensor([0, 24], dtype=torch.int64)
    ref = torch.rand(2, 3, 3, dtype=dtype) * 0.8 + 0.1
    mask = torch.ones(2, 28, dtype=torch.bool)
    mask[1, 5:9] = False
    return (_rand(2, 3, 8, dtype=dtype), ref, _rand(2, 28, 8, dtype=dtype), shapes, start), {
        "value_mask": mask
    }


def _mask(b, n):
    mask = torch.ones(b, n, dtype=torch.bool)
    mask[-1, -2:] = False
    return mask


CASES = [
    Case(
        "axial2d",
        "AxialAttention",
        dict(dim=8, heads=2),
        lambda d: ((_rand(2, 8, 3, 4, dtype=d),), {}),
    ),
    Case(
        "axial3d-seq",
        "AxialAttention",
        dict(dim=8, num_axes=3, heads=2, combine="sequential", channels_first=False),
        lambda d: ((_rand(1, 2, 3, 4, 8, dtype=d),), {}),
    ),
    Case(
        "cross",
        "CrossAttention",
        dict(dim=8, context_dim=6, heads=2),
        lambda d: (
            (_rand(2, 5, 8, dtype=d), _rand(2, 4, 6, dtype=d)),
            {"context_mask": _mask(2, 4)},
        ),
    ),
    Case(
        "crossvit",
        "CrossViTFusion",
        dict(dim=8, context_dim=12, heads=2),
        lambda d: ((_rand(2, 4, 8, dtype=d), _rand(2, 5, 12, dtype=d)), {}),
    ),
    Case(
        "deform3d",
        "DeformableAttention3D",
        dict(dim=8, heads=2, levels=2, points=2),
        _deform_inputs,
    ),
    Case(
        "gated",
        "GatedMultiheadAttention",
        dict(dim=8, heads=2),
        lambda d: ((_rand(2, 5, 8, dtype=d),), {"key_padding_mask": _mask(2, 5)}),
    ),
    Case(
        "gated-causal-nogate",
        "GatedMultiheadAttention",
        dict(dim=8, heads=2, gate=False, causal=True),
        lambda d: ((_rand(2, 5, 8, dtype=d),), {}),
    ),
    Case(
        "joint",
        "JointAttention",
        dict(dim=8, group_size=4, query_key_dim=8, expansion_factor=2.0, rotary_dim=4),
        lambda d: ((_rand(2, 10, 8, dtype=d),), {}),
    ),
    Case(
        "joint-causal-ln",
        "JointAttention",
        dict(dim=8, group_size=4, query_key_dim=8, causal=True, norm="layernorm", kernel_size=3),
        lambda d: ((_rand(2, 9, 8, dtype=d),), {}),
    ),
    Case(
        "jointcross",
        "JointCrossAttention",
        dict(dim=8, context_dim=6, heads=2, dim_head=4),
        lambda d: ((_rand(2, 5, 8, dtype=d), _rand(2, 5, 6, dtype=d)), {"local_mask": _mask(2, 4)}),
    ),
    Case(
        "psa-parallel",
        "PolarizedSelfAttention",
        dict(channels=8),
        lambda d: ((_rand(2, 8, 3, 4, dtype=d),), {}),
    ),
    Case(
        "psa-sequential",
        "PolarizedSelfAttention",
        dict(channels=16, mode="sequential"),
        lambda d: ((_rand(2, 16, 3, 2, dtype=d),), {}),
    ),
    Case(
        "sentence",
        "SentenceAttentionBlock",
        dict(channels=6, text_dim=4),
        lambda d: ((_rand(2, 6, 3, 3, dtype=d), _rand(2, 4, dtype=d)), {}),
    ),
    Case(
        "xpool",
        "TextConditionedPooling",
        dict(dim=8, heads=2, text_chunk_size=2),
        lambda d: ((_rand(3, 8, dtype=d), _rand(2, 4, 8, dtype=d)), {"frame_mask": _mask(2, 4)}),
    ),
]
IDS = [c.id for c in CASES]


def build(case: Case, dtype=torch.float32) -> torch.nn.Module:
    """Builds by name and perturbs every parameter, so zero/identity inits are not special."""
    module = BLOCKS.build(dict(type=case.type, **case.kwargs)).to(dtype)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return module.eval()


# The sparse voxel blocks (``shared_blocks.voxel``) take packed voxel sets and have their own
# contract tests in tests/shared_blocks/voxel.
DENSE_BLOCKS = {
    name: cls
    for name, cls in BLOCKS.module_dict.items()
    if not cls.__module__.startswith("tessera.shared_blocks.voxel")
}


def test_every_registered_block_has_a_case():
    assert set(DENSE_BLOCKS) == {c.type for c in CASES}


def test_registry_is_exported_and_complete():
    for name, cls in DENSE_BLOCKS.items():
        assert getattr(sb, name) is cls
        assert name in sb.__all__


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_build_by_name(case):
    module = BLOCKS.build(dict(type=case.type, **case.kwargs))
    assert type(module) is BLOCKS.get(case.type)
    assert type(module).__name__ == case.type


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_forward_backward(case):
    module = build(case).train()
    args, kwargs = case.inputs(torch.float32)
    args = tuple(a.requires_grad_() if a.is_floating_point() else a for a in args)
    out = module(*args, **kwargs)
    assert torch.isfinite(out).all()
    (out * torch.randn_like(out)).sum().backward()
    for name, p in module.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    float_args = [a for a in args if a.is_floating_point()]
    assert any(a.grad.abs().sum() > 0 for a in float_args)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_gradcheck_fp64(case):
    module = build(case, torch.float64)
    args, kwargs = case.inputs(torch.float64)
    positions = [i for i, a in enumerate(args) if a.is_floating_point()]
    if case.type == "DeformableAttention3D":
        positions = [0, 2]  # query and value; reference points are checked in their own tests

    def fn(*diff):
        full = list(args)
        for i, t in zip(positions, diff, strict=True):
            full[i] = t
        return module(*full, **kwargs)

    diff = [args[i].detach().clone().requires_grad_() for i in positions]
    assert torch.autograd.gradcheck(fn, diff, eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_deterministic_for_fixed_seed(case):
    outs = []
    for _ in range(2):
        torch.manual_seed(123)
        module = build(case)
        args, kwargs = case.inputs(torch.float32)
        outs.append(module(*args, **kwargs))
    assert torch.equal(outs[0], outs[1])


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_wrong_input_rank_raises_value_error(case):
    module = build(case)
    args, kwargs = case.inputs(torch.float32)
    with pytest.raises(ValueError):
        module(args[0].unsqueeze(0), *args[1:], **kwargs)


def test_constructor_defaults_are_paper_faithful():
    def defaults(cls):
        return {
            k: p.default
            for k, p in inspect.signature(cls).parameters.items()
            if p.default is not inspect.Parameter.empty
        }

    expected = {
        sb.JointAttention: dict(
            group_size=256,
            query_key_dim=128,
            expansion_factor=4.0,
            dropout=0.1,
            shift_tokens=True,
            causal=False,
            norm="scalenorm",
            kernel_size=17,
            rotary_dim=32,
        ),
        sb.JointCrossAttention: dict(heads=8, dim_head=64, num_global=1),
        sb.CrossAttention: dict(context_dim=None, heads=8),
        sb.TextConditionedPooling: dict(heads=1, dropout=0.3),
        sb.AxialAttention: dict(
            num_axes=2, heads=8, dim_head=None, channels_first=True, combine="sum"
        ),
        sb.DeformableAttention3D: dict(heads=8, levels=1, points=4),
        sb.SentenceAttentionBlock: dict(hidden_mult=4),
        sb.PolarizedSelfAttention: dict(mode="parallel"),
        sb.GatedMultiheadAttention: dict(heads=8, qkv_bias=True, gate=True),
    }
    for cls, want in expected.items():
        got = defaults(cls)
        assert {k: got[k] for k in want} == want, cls.__name__

    joint = sb.JointAttention(64)
    assert joint.to_qk.conv.kernel_size == (17,)
    assert isinstance(joint.to_qk.norm, sb.joint_attention.ScaleNorm)
    assert joint.rotary.dim == 32 and joint.gamma.shape == (4, 128)
    assert joint.to_hidden.linear.out_features == 256 and joint.to_out.linear.in_features == 128
    assert 0.01 < joint.gamma.std() < 0.03 and joint.beta.abs().sum() == 0
    assert sb.JointAttention(64, query_key_dim=16).rotary.dim == 16

    xpool = sb.TextConditionedPooling(16)
    for proj in (xpool.q_proj, xpool.k_proj, xpool.v_proj, xpool.out_proj, xpool.linear_proj):
        assert torch.equal(proj.weight, torch.eye(16)) and proj.bias.abs().sum() == 0

    assert sb.JointCrossAttention(8, 6, heads=2).fusion.abs().sum() == 0
    deform = sb.DeformableAttention3D(16, heads=4, points=3)
    assert deform.attention_weights.weight.abs().sum() == 0
    ray = deform.sampling_offsets.bias.view(4, 1, 3, 3)
    # Points of one head lie on a ray at 1, 2, 3 times the first offset (Deformable DETR init).
    torch.testing.assert_close(ray[:, :, 2], 3 * ray[:, :, 0])
    assert torch.allclose(ray[:, :, 0].abs().amax(-1), torch.ones(4, 1))


def _compile_cases():
    return [pytest.param(c, id=c.id, marks=pytest.mark.slow) for c in CASES]


@pytest.mark.parametrize("case", _compile_cases())
def test_torch_compile_matches_eager(case):
    torch._dynamo.reset()
    module = build(case)
    args, kwargs = case.inputs(torch.float32)
    eager = module(*args, **kwargs)
    compiled = torch.compile(module, fullgraph=False)(*args, **kwargs)
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)
