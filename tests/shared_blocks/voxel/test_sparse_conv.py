"""Sparse depthwise conv equals a dense depthwise conv3d on the densified grid."""

import pytest
import torch
import torch.nn.functional as F

from tessera.shared_blocks.voxel import SparseDepthwiseConv3d, neighbour_index

GRID = (5, 14, 16)


def densify(features, coords, batch_size, grid):
    dense = features.new_zeros(batch_size, features.shape[1], *grid)
    b, z, y, x = coords.long().unbind(1)
    dense[b, :, z, y, x] = features
    return dense


@pytest.mark.parametrize("kernel", [(3, 3, 3), (1, 1, 13), (1, 13, 1), (3, 1, 5)])
def test_equals_dense_conv3d(scene, kernel):
    feats, coords = scene(250, GRID, batch_size=2, channels=6, dtype=torch.float64, seed=1)
    conv = SparseDepthwiseConv3d(6, kernel).double()
    with torch.no_grad():
        conv.bias.normal_()
    out = conv(feats, coords, GRID)
    dense = F.conv3d(
        densify(feats, coords, 2, GRID),
        conv.weight,
        conv.bias,
        padding=tuple(k // 2 for k in kernel),
        groups=6,
    )
    b, z, y, x = coords.unbind(1)
    torch.testing.assert_close(out, dense[b, :, z, y, x], rtol=1e-12, atol=1e-12)


def test_neighbour_table_brute_force(scene):
    _, coords = scene(120, GRID, seed=2)
    table = neighbour_index(coords, GRID, (3, 3, 3))
    where = {tuple(c): i for i, c in enumerate(coords.tolist())}
    k = 0
    for dz in (-1, 0, 1):
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                for i, (b, z, y, x) in enumerate(coords.tolist()):
                    assert table[k, i] == where.get((b, z + dz, y + dy, x + dx), -1)
                k += 1


def test_gradcheck():
    coords = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 2], [0, 0, 2, 2], [1, 0, 1, 1]])
    conv = SparseDepthwiseConv3d(2, (1, 3, 3)).double()
    feats = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    weight = conv.weight.detach().clone().requires_grad_(True)
    bias = conv.bias.detach().clone().requires_grad_(True)

    def fn(f, w, b):
        params = {"weight": w, "bias": b}
        return torch.func.functional_call(conv, params, (f, coords, (1, 4, 4)))

    assert torch.autograd.gradcheck(fn, (feats, weight, bias))


def test_rejects_bad_input():
    conv = SparseDepthwiseConv3d(4, 3)
    with pytest.raises(ValueError, match="features"):
        conv(torch.randn(3, 5), torch.zeros(3, 4, dtype=torch.long), (1, 4, 4))
    with pytest.raises(ValueError, match="coords"):
        conv(torch.randn(3, 4), torch.zeros(3, 3, dtype=torch.long), (1, 4, 4))
    with pytest.raises(ValueError, match="kernel_size"):
        SparseDepthwiseConv3d(4, (2, 3, 3))(torch.randn(1, 4), torch.zeros(1, 4).long(), (1, 4, 4))
