"""Load the published MossFormer (v1) weights into :class:`~.model.MossFormer`.

The official release (ModelScope ``damo/speech_mossformer_separation_temporal_8k``; code in
``modelscope`` ``models/audio/separation/mossformer*.py``) ships three ``torch.save`` state
dicts: ``encoder.bin`` (``Encoder``), ``masknet.bin`` (``MossFormerMaskNet``) and
``decoder.bin`` (``Decoder``, a ``ConvTranspose1d``). Our modules mirror that structure, so the
conversion is a key renaming; the configuration is read off the tensor shapes. The
frequency buffers of the checkpoint (``pos_enc.inv_freq``, each layer's
``rotary_pos_emb.freqs``) are kept as they are stored, not recomputed, so the model computes
exactly what the official one does with that file.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from tessera.apps.separation.model import MossFormer

_LAYER = "mdl.att_mdl.mossformerM.layers."
_FFCONV = {"mdl.0.g": "norm.g", "mdl.1.weight": "linear.weight", "mdl.1.bias": "linear.bias"}
_FFCONV["mdl.3.sequential.1.conv.weight"] = "conv.weight"
_MASKNET = {
    "mdl.att_mdl.norm.norm.weight": "blocks_norm.weight",
    "mdl.att_mdl.norm.norm.bias": "blocks_norm.bias",
    "mdl.att_norm.weight": "att_norm.weight",
    "mdl.att_norm.bias": "att_norm.bias",
    "output.0.weight": "output.weight",
    "output.0.bias": "output.bias",
    "output_gate.0.weight": "output_gate.weight",
    "output_gate.0.bias": "output_gate.bias",
}
_SAME = ("norm.", "conv1d_encoder.", "pos_enc.scale", "prelu.", "conv1d_out.", "conv1_decoder.")


def frequency_buffers(masknet: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our buffer names -> the official file's frequency tensors (position and rotary)."""
    buffers = {}
    for key, value in masknet.items():
        if key == "pos_enc.inv_freq":
            buffers["mask_net.pos_enc.inv_freq"] = value
        elif key.startswith(_LAYER) and key.endswith("rotary_pos_emb.freqs"):
            index = key[len(_LAYER) :].partition(".")[0]
            buffers[f"mask_net.blocks.{index}.rotary.inv_freq"] = value
    return buffers


def set_frequency_buffers(model: MossFormer, buffers: dict[str, torch.Tensor]) -> None:
    """Copy ``buffers`` (from :func:`frequency_buffers`) into ``model``'s frequency buffers.

    Raises:
        ValueError: a buffer of the wrong size (not a MossFormer v1 file of this shape).
    """
    own = dict(model.named_buffers())
    for name, value in buffers.items():
        if name not in own or own[name].shape != value.reshape(-1).shape:
            found = tuple(own[name].shape) if name in own else "no such buffer"
            raise ValueError(f"{name}: shape {tuple(value.shape)} does not fit ({found})")
        own[name].copy_(value.reshape(-1).to(own[name].dtype))


def convert_masknet_key(key: str) -> str | None:
    """Our ``mask_net.*`` name for an official ``masknet.bin`` key (None: a frequency buffer,
    see :func:`frequency_buffers`)."""
    if key == "pos_enc.inv_freq" or re.search(r"rotary_pos_emb\.", key):
        return None
    if key in _MASKNET:
        return "mask_net." + _MASKNET[key]
    if key.startswith(_LAYER):
        index, _, rest = key[len(_LAYER) :].partition(".")
        proj, _, tail = rest.partition(".")
        if proj in ("to_hidden", "to_qk", "to_out") and tail in _FFCONV:
            return f"mask_net.blocks.{index}.{proj}.{_FFCONV[tail]}"
        if proj == "qk_offset_scale" and tail in ("gamma", "beta"):
            return f"mask_net.blocks.{index}.{tail}"
    elif key.startswith(_SAME):
        return "mask_net." + key
    raise KeyError(f"unexpected key in masknet.bin: {key!r}")


def convert_official_state(
    encoder: dict[str, torch.Tensor],
    masknet: dict[str, torch.Tensor],
    decoder: dict[str, torch.Tensor],
) -> dict[str, torch.Tensor]:
    """Our ``MossFormer`` state dict from the three official state dicts."""
    if set(encoder) != {"conv1d.weight"}:
        raise KeyError(f"encoder.bin must hold only 'conv1d.weight', got {sorted(encoder)}")
    if set(decoder) - {"weight", "bias"} or "weight" not in decoder:
        raise KeyError(f"decoder.bin must hold 'weight', got {sorted(decoder)}")
    if "bias" in decoder and decoder["bias"].abs().max() > 0:
        raise ValueError("decoder.bin has a non-zero bias; MossFormer v1 decoders have none")
    state = {"encoder.weight": encoder["conv1d.weight"], "decoder.weight": decoder["weight"]}
    for key, value in masknet.items():
        new = convert_masknet_key(key)
        if new is not None:
            state[new] = value
    return state


def config_from_state(state: dict[str, torch.Tensor]) -> dict:
    """MossFormer constructor arguments read off the converted tensor shapes."""
    encoder_dim, _, kernel_size = state["encoder.weight"].shape
    channels = state["mask_net.conv1d_encoder.weight"].shape[0]
    blocks = {int(k.split(".")[2]) for k in state if k.startswith("mask_net.blocks.")}
    return {
        "num_spks": state["mask_net.conv1d_out.weight"].shape[0] // channels,
        "encoder_dim": encoder_dim,
        "kernel_size": kernel_size,
        "channels": channels,
        "num_blocks": len(blocks),
        "query_key_dim": state["mask_net.blocks.0.gamma"].shape[1] if blocks else 128,
        "expansion_factor": (
            state["mask_net.blocks.0.to_hidden.linear.weight"].shape[0] / channels
            if blocks
            else 4.0
        ),
    }


def official_parts(path: str | Path) -> dict[str, dict[str, torch.Tensor]]:
    """The three official state dicts of folder ``path`` (``weights_only`` loads)."""
    path = Path(path)
    parts = {}
    for name in ("encoder", "masknet", "decoder"):
        file = path / f"{name}.bin"
        if not file.is_file():
            raise FileNotFoundError(
                f"{file}: missing (an official MossFormer folder holds encoder.bin, "
                "masknet.bin and decoder.bin)"
            )
        try:
            parts[name] = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ValueError(f"{file}: not a readable torch state dict ({err})") from err
    return parts


def load_official_mossformer(path: str | Path, group_size: int = 256) -> MossFormer:
    """A :class:`MossFormer` in eval mode holding the official v1 weights in folder ``path``.

    Args:
        path: folder with ``encoder.bin``, ``masknet.bin`` and ``decoder.bin`` (e.g. the
            downloaded ModelScope model ``damo/speech_mossformer_separation_temporal_8k``).
        group_size: local attention chunk length (not stored in the weights; 256 officially).

    The official model expects 8 kHz audio; :func:`tessera.apps.separation.load` resamples.
    """
    parts = official_parts(path)
    state = convert_official_state(parts["encoder"], parts["masknet"], parts["decoder"])
    model = MossFormer(**config_from_state(state), group_size=group_size)
    model.load_state_dict(state, strict=True)
    set_frequency_buffers(model, frequency_buffers(parts["masknet"]))
    return model.eval()
