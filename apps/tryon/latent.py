"""GPU-scale latent MV-VTON from diffusers' own classes.

``AutoencoderKL`` (f = 8, ``scaling_factor`` 0.18215) + ``UNet2DConditionModel`` whose input is
``cat[z_t (4), E(agnostic) (4), mask ↓8 (1), E(pre-warped garment) (4)]`` = 13 channels
(Paint-by-Example's 9-channel inpainting input plus MV-VTON's ``warp_feat`` latent). The
joint garment attention is injected into the decoder's cross-attention layers (``up_blocks``
``attn2``) through diffusers' attention-processor API: :class:`JointGarmentAttnProcessor`
attends to the global token(s) with the layer's own ``to_k``/``to_v`` and to the local tokens
with its own projections, fused by a zero-initialised vector (MV-VTON ``ldm/modules/
attention.py``: ``to_q_ip``/``to_k_ip``/``to_v_ip``, ``ip_scale``).

``LatentTryOn.from_pretrained(path)`` loads a Paint-by-Example / Stable Diffusion folder
(``unet/``, ``vae/``) with ``from_pretrained`` as MV-VTON initialises, widening ``conv_in`` to
13 channels (the extra input channels start at zero). Nothing is downloaded in tests: they use
a tiny random configuration of the same classes.

``LatentTryOn.paper_size(device="meta")`` builds the published size (MV-VTON
``configs/viton512.yaml``: the Paint-by-Example / SD 1.x UNet and the kl-f8 VAE) without
allocating weights, for :func:`parameter_counts`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IN_CHANNELS = 13
TINY_UNET = dict(
    sample_size=8,
    in_channels=IN_CHANNELS,
    out_channels=4,
    layers_per_block=1,
    block_out_channels=(32, 64),
    down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=32,
    attention_head_dim=8,
    norm_num_groups=8,
)
TINY_VAE = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=4,
    block_out_channels=(16, 32),
    down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
    up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
    norm_num_groups=8,
)
# MV-VTON configs/viton512.yaml unet_config (Paint-by-Example's UNet = SD 1.x with 9 inputs):
# 320 channels, mult (1, 2, 4, 4), 2 res blocks, attention at 1/1, 1/2, 1/4, 8 heads, context 768.
PAPER_UNET = dict(
    sample_size=64,
    in_channels=IN_CHANNELS,
    out_channels=4,
    layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    cross_attention_dim=768,
    attention_head_dim=8,
    norm_num_groups=32,
)
# first_stage_config: kl-f8, ch 128, ch_mult (1, 2, 4, 4), 2 res blocks, 4 latent channels.
PAPER_VAE = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=4,
    block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    layers_per_block=2,
    norm_num_groups=32,
    sample_size=512,
)
# Published sizes: "860M UNet" (CompVis/stable-diffusion README, the SD 1.x UNet that
# Paint-by-Example and MV-VTON fine-tune); the kl-f8 VAE has no count in the LDM paper, its
# released fp32 weights (335 MB) hold 83.7 M values.
PUBLISHED_PARAMETERS = {"unet": 860e6, "vae": 83.7e6}


class JointGarmentAttnProcessor(nn.Module):
    """Cross-attention processor: global tokens through the layer's K/V, local tokens through
    this processor's Q/K/V, ``out = to_out(A_global + A_local ⊙ fusion)``, fusion = 0 at init.

    Args:
        hidden_size: the layer's inner width (``attn.inner_dim``).
        cross_attention_dim: width of the garment tokens.
        num_global: leading global tokens in ``encoder_hidden_states``.
    """

    def __init__(self, hidden_size: int, cross_attention_dim: int, num_global: int = 1):
        super().__init__()
        self.num_global = num_global
        self.to_q_local = nn.Linear(hidden_size, hidden_size, bias=False)
        self.to_k_local = nn.Linear(cross_attention_dim, hidden_size, bias=False)
        self.to_v_local = nn.Linear(cross_attention_dim, hidden_size, bias=False)
        self.fusion = nn.Parameter(torch.zeros(hidden_size))

    @staticmethod
    def _attend(attn, q, k, v) -> torch.Tensor:
        b, h = q.shape[0], attn.heads
        q, k, v = (x.view(b, -1, h, x.shape[-1] // h).transpose(1, 2) for x in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, N, d)
        return out.transpose(1, 2).reshape(b, -1, h * out.shape[-1])

    def __call__(
        self,
        attn,
        hidden_states,
        encoder_hidden_states=None,
        attention_mask=None,
        temb=None,
        *args,
        **kwargs,
    ) -> torch.Tensor:
        if encoder_hidden_states is None:
            raise ValueError("JointGarmentAttnProcessor is for cross-attention layers")
        shape = hidden_states.shape
        x = hidden_states
        if x.ndim == 4:  # (B, C, H, W) → (B, HW, C)
            x = x.flatten(2).transpose(1, 2)
        if attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        ctx_g = encoder_hidden_states[:, : self.num_global]
        ctx_l = encoder_hidden_states[:, self.num_global :]
        out = self._attend(attn, attn.to_q(x), attn.to_k(ctx_g), attn.to_v(ctx_g))
        if ctx_l.shape[1] > 0:
            local = self._attend(
                attn, self.to_q_local(x), self.to_k_local(ctx_l), self.to_v_local(ctx_l)
            )
            out = out + local * self.fusion
        out = attn.to_out[1](attn.to_out[0](out))
        if len(shape) == 4:
            out = out.transpose(1, 2).reshape(shape)
        if attn.residual_connection:
            out = out + hidden_states
        return out / attn.rescale_output_factor


class GlobalOnlyAttnProcessor:
    """Encoder/mid cross-attention sees the global token(s) only, as in MV-VTON, where only
    the decoder blocks receive the local tokens."""

    def __init__(self, inner, num_global: int = 1):
        self.inner, self.num_global = inner, num_global

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, *args, **kwargs):
        if encoder_hidden_states is not None:
            encoder_hidden_states = encoder_hidden_states[:, : self.num_global]
        return self.inner(attn, hidden_states, encoder_hidden_states, *args, **kwargs)


def inject_joint_attention(unet, num_global: int = 1) -> nn.ModuleDict:
    """Give every decoder cross-attention layer a :class:`JointGarmentAttnProcessor` and the
    other cross-attention layers a :class:`GlobalOnlyAttnProcessor`; returns the new joint
    processors (trainable, saved with the model)."""
    processors, new = {}, nn.ModuleDict()
    for name, proc in unet.attn_processors.items():
        if name.startswith("up_blocks") and "attn2" in name:
            layer = unet.get_submodule(name.removesuffix(".processor"))
            p = JointGarmentAttnProcessor(layer.inner_dim, layer.cross_attention_dim, num_global)
            processors[name] = p
            new[name.replace(".", "_")] = p
        elif "attn2" in name:
            processors[name] = GlobalOnlyAttnProcessor(proc, num_global)
        else:
            processors[name] = proc
    unet.set_attn_processor(processors)
    return new


class LatentTryOn(nn.Module):
    """Latent MV-VTON denoiser: VAE + 13-channel conditional UNet with joint garment attention.

    Shapes: images ``(B, 3, H, W)`` in [-1, 1], mask ``(B, 1, H, W)``; context ``(B, 1 + M, C)``
    (global token first); H, W divisible by 8 · 2^(levels − 1).
    """

    def __init__(self, unet, vae, scaling_factor: float = 0.18215):
        super().__init__()
        self.unet, self.vae, self.scaling_factor = unet, vae, scaling_factor
        self.joint_attention = inject_joint_attention(unet)

    @classmethod
    def tiny(cls) -> LatentTryOn:
        from diffusers import AutoencoderKL, UNet2DConditionModel

        return cls(UNet2DConditionModel(**TINY_UNET), AutoencoderKL(**TINY_VAE))

    @classmethod
    def paper_size(cls, device: str | torch.device | None = "meta") -> LatentTryOn:
        """The published size with random weights; on ``device="meta"`` nothing is
        allocated (shapes only, e.g. for :func:`parameter_counts`)."""
        from diffusers import AutoencoderKL, UNet2DConditionModel

        with torch.device(device or "cpu"):
            return cls(UNet2DConditionModel(**PAPER_UNET), AutoencoderKL(**PAPER_VAE))

    @classmethod
    def from_pretrained(cls, path: str, **kwargs) -> LatentTryOn:
        """A Paint-by-Example / Stable Diffusion folder with ``unet/`` and ``vae/``."""
        from diffusers import AutoencoderKL, UNet2DConditionModel

        unet = UNet2DConditionModel.from_pretrained(path, subfolder="unet", **kwargs)
        vae = AutoencoderKL.from_pretrained(path, subfolder="vae", **kwargs)
        return cls(widen_conv_in(unet, IN_CHANNELS), vae, vae.config.scaling_factor)

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(image).latent_dist.mode() * self.scaling_factor

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(latent / self.scaling_factor).sample

    def forward(self, z_t, t, agnostic_latent, mask, warp_latent, context) -> torch.Tensor:
        """ε prediction ``(B, 4, h, w)``; ``mask`` at image or latent size."""
        mask = F.interpolate(mask, size=z_t.shape[-2:], mode="nearest")
        x = torch.cat([z_t, agnostic_latent, mask, warp_latent], 1)
        return self.unet(x, t, encoder_hidden_states=context).sample


def widen_conv_in(unet, in_channels: int):
    """``conv_in`` with ``in_channels`` inputs: the pretrained ones copied, new ones zero."""
    old = unet.conv_in
    if old.in_channels == in_channels:
        return unet
    new = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding)
    with torch.no_grad():
        new.weight.zero_()
        n = min(in_channels, old.in_channels)
        new.weight[:, :n] = old.weight[:, :n]
        new.bias.copy_(old.bias)
    unet.conv_in = new
    unet.register_to_config(in_channels=in_channels)
    return unet


def parameter_counts(model: LatentTryOn) -> dict[str, int]:
    """``unet`` (without the joint garment attention, whose processors diffusers registers
    inside the UNet), ``vae``, ``joint_attention`` (the injected local-token projections and
    fusion vectors) and ``total``."""

    def count(params) -> int:
        return sum(p.numel() for p in params)

    joint = count(model.joint_attention.parameters())
    counts = {
        "unet": count(model.unet.parameters()) - joint,
        "vae": count(model.vae.parameters()),
        "joint_attention": joint,
    }
    return counts | {"total": count(model.parameters())}
