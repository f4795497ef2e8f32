"""Backbone-level behaviour of DSVT, FlatFormer and ScatterFormer (tiny presets)."""

import pytest
import torch

from tessera.shared_blocks import BLOCKS
from tessera.shared_blocks.voxel import CrossWindowInteraction, DSVTBlock, DSVTPooling

GRID = (1, 26, 30)
PRESETS = ["dsvt_tiny", "flatformer_tiny", "scatterformer_tiny"]


def build(name, dtype=torch.float64):
    return BLOCKS.build(dict(type=name)).to(dtype).eval()


@pytest.mark.parametrize("name", PRESETS)
def test_permutation_equivariance(scene, name):
    x, coords = scene(260, GRID, batch_size=3, channels=32, dtype=torch.float64)
    model = build(name)
    out = model(x, coords, GRID)
    perm = torch.randperm(x.shape[0])
    out_perm = model(x[perm], coords[perm], GRID)
    torch.testing.assert_close(out_perm[torch.argsort(perm)], out, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", PRESETS)
def test_empty_sample_does_not_change_others(scene, name):
    """Sample 1 is empty; samples are independent, so each equals its own run."""
    x, coords = scene(120, GRID, batches=(0, 2), channels=32, dtype=torch.float64, seed=1)
    model = build(name)
    out = model(x, coords, GRID)
    for b in (0, 2):
        rows = coords[:, 0] == b
        alone = model(x[rows], coords[rows] * torch.tensor([0, 1, 1, 1]), GRID)
        torch.testing.assert_close(out[rows], alone, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", PRESETS)
def test_single_voxel_and_no_voxel(name):
    model = build(name)
    x = torch.randn(1, 32, dtype=torch.float64)
    out = model(x, torch.tensor([[1, 0, 5, 7]]), GRID)
    assert out.shape == (1, 32) and torch.isfinite(out).all()
    empty = model(x[:0], torch.zeros(0, 4, dtype=torch.long), GRID)
    assert empty.shape == (0, 32)


@pytest.mark.parametrize("name", PRESETS)
def test_all_voxels_in_one_window(name):
    ys, xs = torch.meshgrid(torch.arange(6), torch.arange(6), indexing="ij")
    coords = torch.stack([torch.zeros(36), torch.zeros(36), ys.flatten(), xs.flatten()], 1).long()
    x = torch.randn(36, 32, dtype=torch.float64)
    out = build(name)(x, coords, (1, 6, 6))
    assert out.shape == (36, 32) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", PRESETS)
def test_gradients_reach_every_parameter(scene, name):
    x, coords = scene(200, GRID, channels=32, seed=2)
    model = BLOCKS.build(dict(type=name)).train()
    x.requires_grad_(True)
    out = model(x, coords, GRID)
    (out * torch.randn_like(out)).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert not missing
    assert x.grad.abs().sum() > 0


def test_dsvt_pooling_gradients_and_blocks(scene):
    x, coords = scene(100, (4, 10, 10), channels=16, seed=3)
    modules = [
        DSVTPooling(16, (2, 1, 1), heads=4),
        DSVTBlock(16, 4, 32, set_size=8, window_shape=(2, 4, 4), shift=(1, 2, 2)),
        CrossWindowInteraction(16, 32, kernel_size=5),
    ]
    for m in modules:
        out = m(x, coords, (4, 10, 10))
        out = out[0] if isinstance(out, tuple) else out
        (out * torch.randn_like(out)).sum().backward()
        missing = [n for n, p in m.named_parameters() if p.grad is None or not p.grad.any()]
        assert not missing, type(m).__name__


def test_dsvt_hybrid_window_shift():
    model = BLOCKS.build(dict(type="dsvt_pillar"))
    assert [b.config for b in model.blocks] == [
        ((1, 12, 12), (0, 0, 0), 36),
        ((1, 24, 24), (0, 6, 6), 36),
    ] * 2
    assert model.dim == 192 and model.blocks[0].layers[0].heads == 8


def test_presets_match_papers():
    flat = BLOCKS.build(dict(type="flatformer_waymo"))
    assert flat.blocks[0].group_size == 144 and flat.blocks[0].window_shape == (13, 13)
    scat = BLOCKS.build(dict(type="scatterformer_waymo"))
    assert [c.kernel_size for c in scat.blocks[0].cwi.convs] == [(3, 3, 3), (1, 1, 13), (1, 13, 1)]


@pytest.mark.parametrize("name", PRESETS)
def test_rejects_bad_inputs(name):
    model = build(name, torch.float32)
    with pytest.raises(ValueError, match="features"):
        model(torch.randn(4, 31), torch.zeros(4, 4, dtype=torch.long), GRID)
    with pytest.raises(ValueError, match="coords"):
        model(torch.randn(4, 32), torch.zeros(4, 4), GRID)
    with pytest.raises(ValueError, match="rows"):
        model(torch.randn(4, 32), torch.zeros(3, 4, dtype=torch.long), GRID)


@pytest.mark.kernels
@pytest.mark.parametrize("name", PRESETS)
def test_triton_backend_matches_torch(scene, name, monkeypatch):
    """The same block through the Triton kernels (interpreter on CPU) and the PyTorch path."""
    x, coords = scene(40, (1, 8, 8), channels=32, seed=4)
    model = BLOCKS.build(dict(type=name, num_blocks=1)).eval()
    monkeypatch.setenv("TESSERA_KERNELS", "torch")
    ref = model(x, coords, (1, 8, 8))
    monkeypatch.setenv("TESSERA_KERNELS", "triton")
    out = model(x, coords, (1, 8, 8))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.kernels
def test_pooling_triton_backend_matches_torch(scene, monkeypatch):
    x, coords = scene(40, (2, 8, 8), channels=16, seed=5)
    pool = DSVTPooling(16, (2, 2, 2), heads=4)
    monkeypatch.setenv("TESSERA_KERNELS", "torch")
    ref = pool(x, coords, (2, 8, 8))[0]
    monkeypatch.setenv("TESSERA_KERNELS", "triton")
    torch.testing.assert_close(pool(x, coords, (2, 8, 8))[0], ref, rtol=1e-4, atol=1e-4)
