"""One weight-file format for every app: safetensors with hparams/data, or a Lightning .ckpt."""

import lightning as L
import pytest
import torch

from tessera.apps.common.weights import read_weights, save_weights


class Tiny(L.LightningModule):
    def __init__(self, width: int = 3, pretrained: bool = True):
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(2, width)


def test_safetensors_round_trip_rebuilds_the_module(tmp_path):
    module = Tiny(width=5)
    path = save_weights(tmp_path / "sub" / "m.safetensors", module, task="toy", data={"sr": 8000})
    weights = read_weights(path, task="toy")
    assert weights.hparams == {"width": 5, "pretrained": True}
    assert weights.data == {"sr": 8000}
    rebuilt = weights.build(Tiny, pretrained=False)
    assert rebuilt.hparams.pretrained is False and not rebuilt.training
    assert torch.equal(rebuilt.layer.weight, module.layer.weight)


def test_file_of_another_task_or_config_is_refused(tmp_path):
    path = save_weights(tmp_path / "m.safetensors", Tiny(), task="toy")
    with pytest.raises(ValueError, match="not a pose checkpoint"):
        read_weights(path, task="pose")
    weights = read_weights(path, task="toy")
    with pytest.raises(ValueError, match="do not fit Tiny"):
        weights.build(Tiny, width=4)
    (tmp_path / "bad.safetensors").write_bytes(b"not a file of weights")
    with pytest.raises(ValueError, match="bad.safetensors"):
        read_weights(tmp_path / "bad.safetensors", task="toy")


def test_lightning_checkpoint_is_read_with_private_keys_dropped(tmp_path):
    module = Tiny(width=4)
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.strategy.connect(module)
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    payload = torch.load(tmp_path / "m.ckpt", weights_only=True)
    payload["hyper_parameters"]["_class_path"] = "x.Tiny"
    torch.save(payload, tmp_path / "m.ckpt")
    weights = read_weights(tmp_path / "m.ckpt", task="toy")
    assert weights.hparams == {"width": 4, "pretrained": True}
    assert torch.equal(weights.build(Tiny).layer.bias, module.layer.bias)
    with pytest.raises(FileNotFoundError, match="neither a file nor a registered name"):
        read_weights(tmp_path / "missing.ckpt", task="toy")
