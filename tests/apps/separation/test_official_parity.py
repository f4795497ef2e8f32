"""Parity with the official MossFormer code (ModelScope ``models/audio/separation/
mossformer*.py``, the dev dependency ``modelscope``) at a realistic length: 4 s at 8 kHz.

Only the model files are imported; the ModelScope registry/hub modules they name are stubbed
(nothing of the hub, nothing online runs), and so is SpeechBrain's ``LayerNorm`` (a
``torch.nn.LayerNorm`` wrapper) when SpeechBrain is not installed. The official modules are
built with random weights, saved as the official encoder/masknet/decoder ``.bin`` files, and
loaded through the paths users take (:func:`load` and ``--model.init_weights``)."""

import importlib
import importlib.util
import sys
import types

import pytest
import torch
from torch import nn

from tessera.apps.separation import load
from tessera.apps.separation.module import SeparationModule

CFG = dict(in_channels=32, out_channels=32, d_model=32, kernel_size=16, stride=8, bias=False,
           num_blocks=2, attn_dropout=0.0, group_size=256, query_key_dim=16,
           expansion_factor=4.0, causal=False, norm="ln", num_spks=2)  # fmt: skip


@pytest.fixture
def official(monkeypatch):
    """The official ``modelscope.models.audio.separation.mossformer`` module."""
    spec = importlib.util.find_spec("modelscope")
    if spec is None:
        pytest.skip("modelscope is not installed (dev dependency: pip install -e .[dev])")
    root = spec.submodule_search_locations[0]

    class Registry:
        def register_module(self, *args, **kwargs):
            return lambda cls: cls

    class TorchModel(nn.Module):
        def __init__(self, *args, **kwargs):
            super().__init__()

    class SpeechBrainLayerNorm(nn.Module):
        """``speechbrain.nnet.normalization.LayerNorm`` (the official code imports SpeechBrain
        for it): ``torch.nn.LayerNorm`` over the last axis held as ``.norm``."""

        def __init__(self, input_size, input_shape=None, eps=1e-5, elementwise_affine=True):
            super().__init__()
            self.norm = nn.LayerNorm(input_size, eps=eps, elementwise_affine=elementwise_affine)

        def forward(self, x):
            return self.norm(x)

    names = ("modelscope", "modelscope.metainfo", "modelscope.models", "modelscope.models.base",
             "modelscope.utils", "modelscope.utils.constant", "modelscope.models.audio",
             "modelscope.models.audio.separation")  # fmt: skip
    stubs = {name: types.ModuleType(name) for name in names}
    stubs["modelscope.metainfo"].Models = types.SimpleNamespace(
        speech_mossformer_separation_temporal_8k="speech_mossformer_separation_temporal_8k"
    )
    stubs["modelscope.models"].MODELS = Registry()
    stubs["modelscope.models"].TorchModel = TorchModel
    stubs["modelscope.models.base"].Tensor = torch.Tensor
    stubs["modelscope.utils.constant"].Tasks = types.SimpleNamespace(speech_separation="sep")
    stubs["modelscope.models.audio.separation"].__path__ = [f"{root}/models/audio/separation"]
    speechbrain = types.ModuleType("speechbrain")
    speechbrain.nnet = types.SimpleNamespace(
        normalization=types.SimpleNamespace(LayerNorm=SpeechBrainLayerNorm)
    )
    if importlib.util.find_spec("speechbrain") is None:
        monkeypatch.setitem(sys.modules, "speechbrain", speechbrain)
    for name in [n for n in sys.modules if n.startswith("modelscope")]:
        monkeypatch.delitem(sys.modules, name)
    for name, module in stubs.items():
        monkeypatch.setitem(sys.modules, name, module)
    return importlib.import_module("modelscope.models.audio.separation.mossformer")


def official_model(official, folder):
    torch.manual_seed(0)
    model = official.MossFormer("", **CFG).eval()
    with torch.no_grad():  # move norms/scales off their identity init so every weight matters
        for name, p in model.named_parameters():
            if name.endswith(("norm.weight", ".g", "scale", "gamma")):
                p.mul_(1 + 0.3 * torch.randn_like(p))
            elif name.endswith(("bias", "beta")):
                p.add_(0.1 * torch.randn_like(p))
    folder.mkdir()
    torch.save(model.encoder.state_dict(), folder / "encoder.bin")
    torch.save(model.mask_net.state_dict(), folder / "masknet.bin")
    torch.save(model.decoder.state_dict(), folder / "decoder.bin")
    return model


def test_matches_the_official_code_at_four_seconds(official, tmp_path):
    model = official_model(official, tmp_path / "official")
    mix = torch.randn(1, 4 * 8000, generator=torch.Generator().manual_seed(1)) * 0.1
    with torch.no_grad():
        expected = model(mix).permute(0, 2, 1)  # official (B, T, K) -> (B, K, T)
        ours = load(tmp_path / "official", chunk_seconds=None).model(mix)
        net = dict(encoder_dim=32, kernel_size=16, channels=32, num_blocks=2, group_size=256,
                   query_key_dim=16, expansion_factor=4.0, dropout=0.0)  # fmt: skip
        module = SeparationModule(net=net, init_weights=str(tmp_path / "official")).eval()
        fine_tuned_start = module(mix)
    assert expected.abs().max() > 1e-3
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(fine_tuned_start, expected, atol=1e-5, rtol=1e-4)
