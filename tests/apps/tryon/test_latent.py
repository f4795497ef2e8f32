"""The diffusers-based latent configuration on a tiny random configuration of the same
classes: joint garment attention through the attention-processor API (zero-initialised),
and the ``from_pretrained`` path on a locally saved Paint-by-Example-like folder (9 inputs)."""

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel

from tessera.apps.tryon.latent import (
    IN_CHANNELS,
    PUBLISHED_PARAMETERS,
    TINY_UNET,
    TINY_VAE,
    JointGarmentAttnProcessor,
    LatentTryOn,
    parameter_counts,
)


def inputs(model, context_tokens=5):
    g = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    z = model.encode(image)
    ctx = torch.randn(2, context_tokens, 32, generator=g)
    return z, torch.tensor([10, 900]), model.encode(image), torch.ones(2, 1, 32, 32), z, ctx


def test_processors_on_decoder_cross_attention_only():
    model = LatentTryOn.tiny().eval()
    procs = model.unet.attn_processors
    joint = [n for n, p in procs.items() if isinstance(p, JointGarmentAttnProcessor)]
    assert joint and all(n.startswith("up_blocks") and "attn2" in n for n in joint)
    assert len(model.joint_attention) == len(joint)
    fusion = {id(p.fusion) for p in model.joint_attention.values()}
    assert fusion <= {id(p) for p in model.parameters()}  # trained and saved with the model


def test_zero_fusion_equals_global_only_then_local_tokens_matter():
    model = LatentTryOn.tiny().eval()
    z, t, agn, mask, warp, ctx = inputs(model)
    with torch.no_grad():
        full = model(z, t, agn, mask, warp, ctx)
        glob = model(z, t, agn, mask, warp, ctx[:, :1])
        assert full.shape == z.shape
        torch.testing.assert_close(full, glob, atol=1e-5, rtol=1e-5)
        for p in model.joint_attention.values():
            p.fusion.fill_(1.0)
        assert not torch.allclose(model(z, t, agn, mask, warp, ctx), glob, atol=1e-4)


def test_from_pretrained_widens_a_paint_by_example_unet(tmp_path):
    torch.manual_seed(0)
    UNet2DConditionModel(**(TINY_UNET | {"in_channels": 9})).save_pretrained(tmp_path / "unet")
    AutoencoderKL(**TINY_VAE).save_pretrained(tmp_path / "vae")
    model = LatentTryOn.from_pretrained(str(tmp_path)).eval()
    pbe = UNet2DConditionModel.from_pretrained(tmp_path / "unet")
    w = model.unet.conv_in.weight
    assert w.shape[1] == 13 and model.unet.config.in_channels == 13
    torch.testing.assert_close(w[:, :9], pbe.conv_in.weight)
    assert w[:, 9:].abs().sum() == 0
    z, t, agn, mask, warp, ctx = inputs(model)
    with torch.no_grad():
        assert model(z, t, agn, mask, warp, ctx).shape == z.shape


def test_paper_size_parameter_counts_match_the_published_models():
    """The published size built on the meta device (no weights allocated): the UNet is SD
    1.x's "860M UNet" plus 9 extra input channels of ``conv_in`` (13 vs 4 inputs), the VAE
    the kl-f8 autoencoder (83.7 M), both within 0.1 %; the joint attention adds MV-VTON's
    ``to_q_ip``/``to_k_ip``/``to_v_ip`` + ``ip_scale`` on each of the 9 decoder
    cross-attention layers (3 per CrossAttnUpBlock2D at widths 1280, 640, 320)."""
    model = LatentTryOn.paper_size(device="meta")
    assert next(model.parameters()).device.type == "meta"
    counts = parameter_counts(model)
    extra_inputs = (IN_CHANNELS - 4) * 320 * 3 * 3  # the widened conv_in
    sd_unet = counts["unet"] - extra_inputs
    assert abs(sd_unet - PUBLISHED_PARAMETERS["unet"]) / PUBLISHED_PARAMETERS["unet"] < 1e-3
    assert abs(counts["vae"] - PUBLISHED_PARAMETERS["vae"]) / PUBLISHED_PARAMETERS["vae"] < 1e-3
    ctx = 768
    joint = sum(3 * (c * c + 2 * ctx * c + c) for c in (1280, 640, 320))
    assert counts["joint_attention"] == joint
    assert len(model.joint_attention) == 9
    assert counts["total"] == counts["unet"] + counts["vae"] + joint
