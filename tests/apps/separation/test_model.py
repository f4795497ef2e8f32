"""Model shapes: any speaker count, output length equals input length, masks non-negative."""

import pytest
import torch

from tessera.apps.separation.model import MossFormer, build_model


@pytest.mark.parametrize("num_spks", [2, 3])
@pytest.mark.parametrize("length", [16, 1001, 4000])
def test_output_length_equals_input_length(num_spks, length):
    model = MossFormer(num_spks, encoder_dim=16, channels=16, num_blocks=1, query_key_dim=16)
    mix = torch.randn(2, length, requires_grad=True)
    out = model(mix)
    assert out.shape == (2, num_spks, length)
    out.square().sum().backward()
    assert torch.isfinite(mix.grad).all() and mix.grad.abs().sum() > 0


def test_masks_are_non_negative_and_sum_structure():
    model = MossFormer(2, encoder_dim=16, channels=16, num_blocks=1, query_key_dim=16).eval()
    feats = torch.relu(model.encoder(torch.randn(1, 1, 800)))
    masks = model.mask_net(feats)
    assert masks.shape == (1, 2, 16, feats.shape[-1]) and (masks >= 0).all()


def test_convtasnet_baseline_and_bad_arguments():
    model = build_model("convtasnet", 3, {"enc_num_feats": 32, "msk_num_feats": 16,
                                          "msk_num_hidden_feats": 16, "msk_num_layers": 2,
                                          "msk_num_stacks": 1})  # fmt: skip
    assert model(torch.randn(1, 1600)).shape == (1, 3, 1600)
    with pytest.raises(ValueError, match="arch"):
        build_model("sepformer", 2)
    with pytest.raises(ValueError, match="mixture"):
        MossFormer(2, encoder_dim=8, channels=8, num_blocks=1, query_key_dim=8)(torch.randn(4))
    with pytest.raises(ValueError, match="kernel_size"):
        MossFormer(kernel_size=15)
