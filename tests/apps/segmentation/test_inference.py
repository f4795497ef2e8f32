"""mmseg's test-time geometry: keep-ratio resize, sliding windows, back to the original size;
the model's classes must agree with the data's."""

import lightning as L
import pytest
import torch

from helpers.layouts import segmentation as layouts
from tessera.apps.segmentation.inference import network_logits, slide_logits, to_original_size
from tessera.apps.segmentation.module import SemanticSegmentation
from tessera.datamodules.segmentation import SemanticDataModule
from tessera.datamodules.segmentation.transforms import keep_ratio_size


@pytest.mark.parametrize(
    ("hw", "scale", "want"),
    [
        ((375, 500), (2048, 512), (512, 683)),  # a typical ADE20K image: short side -> 512
        ((1024, 2048), (2048, 1024), (1024, 2048)),  # Cityscapes at its own scale
        ((300, 3000), (2048, 512), (205, 2048)),  # a panorama: the long side binds
    ],
)
def test_keep_ratio_size_is_mmcv_rescale_size(hw, scale, want):
    assert keep_ratio_size(*hw, scale) == want


def test_sliding_windows_equal_whole_image_for_a_per_pixel_model():
    conv = torch.nn.Conv2d(3, 5, 1).double()
    x = torch.randn(2, 3, 23, 37, dtype=torch.float64)
    calls = []

    def forward(crop):
        calls.append(tuple(crop.shape[-2:]))
        return conv(crop)

    torch.testing.assert_close(slide_logits(forward, x, (10, 16), (7, 12)), conv(x))
    # mmseg: max(H - crop + stride - 1, 0) // stride + 1 windows per axis, all full crops
    rows, cols = (23 - 10 + 6) // 7 + 1, (37 - 16 + 11) // 12 + 1
    assert len(calls) == rows * cols and set(calls) == {(10, 16)}
    small = torch.randn(1, 3, 6, 6, dtype=torch.float64)  # smaller than a crop: one window
    torch.testing.assert_close(network_logits(conv, small, "slide", (10, 10), (5, 5)), conv(small))
    with pytest.raises(ValueError, match="test_crop and test_stride"):
        network_logits(conv, small, "slide")


def test_logits_are_cropped_of_padding_and_resized_to_the_original_size():
    logits = torch.zeros(2, 1, 8, 8)
    logits[0, 0, :4, :6] = 1.0  # image 0 filled 4x6 of its padded 8x8 input
    out = to_original_size(logits, torch.tensor([[4, 6], [8, 8]]), torch.tensor([[8, 12], [3, 3]]))
    assert [tuple(o.shape) for o in out] == [(1, 8, 12), (1, 3, 3)]
    assert torch.allclose(out[0], torch.ones(1, 8, 12))  # no padding leaked in


def test_model_and_data_classes_must_agree(tmp_path):
    root = layouts.write_mmseg_custom(tmp_path)
    dm = SemanticDataModule(str(root), num_classes=3, batch_size=2, size=24)
    module = SemanticSegmentation(4, backbone="test_efficientnet", decoder_dim=16)
    trainer = L.Trainer(fast_dev_run=1, logger=False, enable_progress_bar=False)
    with pytest.raises(ValueError, match="data has 3 classes but the model num_classes=4"):
        trainer.fit(module, datamodule=dm)
    named = SemanticDataModule(str(layouts.write_voc(tmp_path / "voc")), layout="voc", size=16)
    module = SemanticSegmentation(21, backbone="test_efficientnet", decoder_dim=16)
    L.Trainer(fast_dev_run=1, logger=False, enable_progress_bar=False).fit(module, named)
    assert module.class_names[15] == "person" and module.hparams.class_names[0] == "background"
