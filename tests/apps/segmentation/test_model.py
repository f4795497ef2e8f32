"""Networks: shapes, gradients, the text is used through the SAB gates, bad input, and the
paper-size configs' parameter counts."""

from pathlib import Path

import pytest
import torch
import yaml

from tessera.apps.segmentation.model import SemanticSegmenter, SentenceAttentionSegmenter
from tessera.apps.segmentation.module import ReferringSegmentation, SemanticSegmentation
from tessera.apps.segmentation.text import TinyTextEncoder, build_text_encoder

CONFIGS = Path(__file__).parents[3] / "apps" / "segmentation" / "configs"
TINY = dict(backbone="test_efficientnet")


@pytest.mark.parametrize("bottleneck", ["axial", "full", "none"])
def test_semantic_forward_backward(bottleneck):
    net = SemanticSegmenter(5, bottleneck=bottleneck, decoder_dim=16, **TINY)
    x = torch.rand(2, 3, 48, 40, requires_grad=True)
    out = net(x)
    assert out.shape == (2, 5, 48, 40)
    out.sum().backward()
    assert x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in net.psa.parameters())


def test_axial_bottleneck_mixes_whole_rows_and_columns():
    net = SemanticSegmenter(3, decoder_dim=16, **TINY).eval()
    y = torch.randn(1, 16, 4, 4)
    z = y.clone()
    z[..., 0, 0] += 1.0
    diff = (net.bottleneck(y) - net.bottleneck(z)).abs().sum(1)[0]
    assert (diff[0] > 0).all() and (diff[:, 0] > 0).all()  # row 0 and column 0 see it
    assert diff[1:, 1:].max() == 0  # axial: nothing off the row/column


def test_sentence_attention_uses_the_text():
    net = SentenceAttentionSegmenter(dropout=0.0, **TINY).eval()
    x = torch.rand(1, 3, 32, 32).expand(2, -1, -1, -1)
    out = net(x, ["where is the red circle?", "the square left of the blue circle"])
    assert out.shape == (2, 1, 32, 32)
    assert not torch.allclose(out[0], out[1])
    gates = net.gates(net.encode_text(["a red circle"]))
    assert [g.shape[1] for g in gates] == net.backbone.feature_info.channels()
    for g in gates:
        torch.testing.assert_close(g.sum(-1), torch.ones(1))
    blind = SentenceAttentionSegmenter(dropout=0.0, use_sab=False, **TINY).eval()
    out = blind(x, ["where is the red circle?", "the square left of the blue circle"])
    torch.testing.assert_close(out[0], out[1])


def test_sentence_attention_gradients_reach_the_text_encoder():
    net = SentenceAttentionSegmenter(**TINY)
    net(torch.rand(2, 3, 32, 32), ["red circle", "blue square"]).mean().backward()
    assert net.text_encoder.token.weight.grad.abs().sum() > 0


def test_bad_inputs_raise_clear_errors():
    net = SentenceAttentionSegmenter(**TINY)
    with pytest.raises(ValueError, match="image must be a float"):
        net(torch.rand(3, 32, 32), ["x"])
    with pytest.raises(ValueError, match="got 1 texts for a batch of 2"):
        net(torch.rand(2, 3, 32, 32), ["x"])
    with pytest.raises(ValueError, match="empty question"):
        net(torch.rand(1, 3, 32, 32), ["  "])
    with pytest.raises(ValueError, match="input_norm"):
        SentenceAttentionSegmenter(input_norm="batch", **TINY)
    with pytest.raises(ValueError, match="class_path"):
        build_text_encoder({"init_args": {}})


def test_tiny_text_encoder_is_order_aware_and_offline():
    enc = TinyTextEncoder().eval()
    a, b = enc(["the circle left of the red square", "the red circle left of the square"])
    assert a.shape == (64,) and not torch.allclose(a, b)


def test_open_clip_text_tower_frozen_random_init():
    from tessera.apps.segmentation.text import OpenCLIPTextEncoder

    enc = OpenCLIPTextEncoder("ViT-B-32", pretrained=None, freeze=True).train()
    out = enc(["where is the cat?"])
    assert out.shape == (1, 512) and not out.requires_grad and not enc.clip.training


def _model_from_config(name: str):
    config = yaml.safe_load((CONFIGS / name).read_text())
    args = dict(config["model"]["init_args"])
    cls = SemanticSegmentation if "Semantic" in config["model"]["class_path"] else None
    return config, args, cls or ReferringSegmentation


# Heads that features_only backbones drop, counted from the published architectures:
# ResNet-50's fc 2048 -> 1000 (He et al. 2016); EfficientNet-B7's 1x1 head conv 640 -> 2560
# with its BatchNorm, and fc 2560 -> 1000 (Tan & Le 2019, Table 1).
DROPPED_HEADS = {
    "resnet50": 2048 * 1000 + 1000,
    "efficientnet_b7": 640 * 2560 + 2 * 2560 + 2560 * 1000 + 1000,
}


@pytest.mark.parametrize(
    ("config", "published"),
    [("semantic-resnet50.yaml", 25.6e6), ("grounding-b7.yaml", 66e6)],
)
def test_paper_size_networks_match_published_parameter_counts(config, published):
    """Counted on our own network (not timm's classifier model): the backbone we build plus
    the classification head it drops must be the published ResNet-50 (25.6 M) /
    EfficientNet-B7 (66 M) within 1 %; the attention decoders add what docs/apps says."""
    _, args, cls = _model_from_config(config)
    with torch.device("meta"):
        if cls is SemanticSegmentation:
            net = SemanticSegmenter(
                args["num_classes"],
                args["backbone"],
                out_indices=args["out_indices"],
                decoder_dim=args["decoder_dim"],
                heads=args["heads"],
            )
        else:  # the paper's text encoder width d = 384 (all-MiniLM-L6-v2) for the SABs
            net = SentenceAttentionSegmenter(
                {
                    "class_path": "tessera.apps.segmentation.text.TinyTextEncoder",
                    "init_args": {"dim": 384},
                },
                args["backbone"],
                out_indices=args["out_indices"],
                hidden_mult=args["hidden_mult"],
            )

    def count(module):
        return sum(p.numel() for p in module.parameters())

    backbone = count(net.backbone)
    assert abs(backbone + DROPPED_HEADS[args["backbone"]] - published) / published < 0.01
    if cls is SemanticSegmentation:
        assert count(net) - backbone == pytest.approx(2.30e6, rel=0.01)  # decoder + attention
    else:
        assert net.backbone.feature_info.channels() == [32, 48, 80, 224, 640]  # as the paper
        # one SAB per scale: Linear(384 -> 1536) + LayerNorm + Linear(1536 -> C_s)
        sab = sum(384 * 1536 + 1536 + 2 * 1536 + 1536 * c + c for c in [32, 48, 80, 224, 640])
        assert count(net.sab) == sab


def test_min_area_rule_empties_small_masks():
    module = ReferringSegmentation(backbone="test_efficientnet", threshold=0.5, min_area=3)
    prob = torch.zeros(2, 4, 4)
    prob[0, :2, :1] = 0.9  # 2 pixels: below min_area -> "no referent"
    prob[1, :2, :2] = 0.9
    mask = module.binarize(prob)
    assert mask[0].sum() == 0 and mask[1].sum() == 4
