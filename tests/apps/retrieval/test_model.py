"""Model pieces: paper-size parameter count, pretrained loading, heads, loss."""

import math

import pytest
import torch

from tessera.apps.retrieval.heads import XPoolHead, build_head
from tessera.apps.retrieval.model import RetrievalModel, clip_loss
from tessera.apps.retrieval.module import false_negative_mask

from .conftest import tiny_config

TINY_CLIP = tiny_config()["clip"]


def test_paper_config_parameter_count_matches_clip_vit_b32():
    """open_clip / OpenAI CLIP ViT-B/32 has 151.28 M parameters; X-Pool adds 5 Linear(512, 512)
    and 3 LayerNorms (1.32 M)."""
    model = RetrievalModel("ViT-B-32", pretrained=None, quick_gelu=True, pooling="xpool")
    clip = sum(p.numel() for p in model.clip.parameters())
    head = sum(p.numel() for p in model.head.parameters())
    assert clip / 1e6 == pytest.approx(151.28, abs=0.01)
    assert head == 5 * (512 * 512 + 512) + 3 * 2 * 512
    assert model.image_size == 224 and model.context_length == 77 and model.dim == 512


def test_pretrained_tag_offline_warns_and_local_file_loads(tmp_path, monkeypatch):
    import open_clip

    def offline(*args, pretrained=None, **kwargs):
        if pretrained:
            raise RuntimeError("no network")
        return real(*args, **kwargs)

    real = open_clip.create_model
    monkeypatch.setattr(open_clip, "create_model", offline)
    with pytest.warns(UserWarning, match="RANDOMLY initialised"):
        RetrievalModel("ViT-B-32", pretrained="openai", pooling="mean")
    monkeypatch.undo()
    source = RetrievalModel(TINY_CLIP, pooling="mean")
    torch.save({"state_dict": source.clip.state_dict()}, tmp_path / "clip.pt")
    loaded = RetrievalModel(TINY_CLIP, pretrained=str(tmp_path / "clip.pt"), pooling="mean")
    for (name, a), b in zip(source.clip.state_dict().items(), loaded.clip.state_dict().values(),
                            strict=True):  # fmt: skip
        assert torch.equal(a, b), name


def test_xpool_attention_weights_are_the_blocks():
    torch.manual_seed(0)
    head = XPoolHead(16, heads=2, dropout=0.0)
    for p in head.parameters():
        p.data.add_(0.1 * torch.randn_like(p))
    text, frames = torch.randn(3, 16), torch.randn(4, 5, 16)
    weights = head.frame_attention(text, frames)  # (V, T, F)
    assert weights.shape == (4, 3, 5)
    assert torch.allclose(weights.sum(-1), torch.ones(4, 3), atol=1e-5)
    # with one head, the block's pooled values are these weights times the projected frames
    single = XPoolHead(16, heads=1, dropout=0.0)
    values = single.pool.v_proj(single.pool.norm1(frames))  # (V, F, C)
    pooled = single.pool.pool(text, frames)  # (V, T, C)
    w = single.frame_attention(text, frames)
    assert torch.allclose(pooled, torch.einsum("vtf,vfc->vtc", w, values), atol=1e-5)


def test_heads_give_cosines_and_tefal_ignores_missing_audio():
    torch.manual_seed(0)
    text, frames = torch.randn(3, 16), torch.randn(4, 6, 16)
    for name in ("mean", "xpool"):
        sims = build_head(name, 16).eval()(text, frames)
        assert sims.shape == (3, 4) and sims.abs().max() <= 1 + 1e-5
    tefal = build_head("tefal", 16).eval()
    audio, mask = torch.randn(4, 5, 16), torch.ones(4, 5, dtype=torch.bool)
    mask[1] = False  # clip 1 has no audio track
    sims = tefal(text, frames, audio, mask)
    assert torch.isfinite(sims).all()
    video_only = build_head("xpool", 16).eval()
    video_only.pool.load_state_dict(tefal.video_pool.state_dict())
    assert torch.allclose(sims[:, 1], video_only(text, frames[1:2])[:, 0], atol=1e-5)
    changed = tefal(text, frames, torch.randn_like(audio), mask)
    assert not torch.allclose(changed[:, 0], sims[:, 0])  # audio matters where there is some
    assert torch.allclose(changed[:, 1], sims[:, 1])


def test_symmetric_infonce_and_clamped_scale():
    sims = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    loss = clip_loss(sims, torch.tensor(10.0))
    logits = sims * 10
    t2v = -torch.log_softmax(logits, 1).diag().mean()
    v2t = -torch.log_softmax(logits.T, 1).diag().mean()
    assert loss == pytest.approx(float((t2v + v2t) / 2))
    model = RetrievalModel(TINY_CLIP, pooling="mean")
    model.clip.logit_scale.data.fill_(10.0)
    assert float(model.logit_scale) == pytest.approx(100.0)


def test_false_negatives_are_left_out_of_the_loss():
    captions = ["a red circle", "a blue square", "a green circle"]
    clip_captions = [["a red circle", "x"], ["a blue square", "a red circle"], ["a green circle"]]
    mask = false_negative_mask(captions, clip_captions)
    assert mask.tolist() == [[False, True, False], [False, False, False], [False, False, False]]
    sims = torch.tensor([[0.9, 0.7, 0.1], [0.2, 0.8, 0.3], [0.4, 0.1, 0.6]], dtype=torch.float64)
    scale = torch.tensor(5.0, dtype=torch.float64)
    logits = (sims * scale).tolist()

    def nll(row, target, dropped):  # -log softmax over the kept entries, from the definition
        kept = [x for j, x in enumerate(row) if j not in dropped]
        return -(row[target] - math.log(sum(math.exp(x) for x in kept)))

    cols = [list(c) for c in zip(*logits, strict=True)]
    t2v = [nll(logits[0], 0, {1}), nll(logits[1], 1, set()), nll(logits[2], 2, set())]
    v2t = [nll(cols[0], 0, set()), nll(cols[1], 1, {0}), nll(cols[2], 2, set())]
    want = (sum(t2v) / 3 + sum(v2t) / 3) / 2
    assert float(clip_loss(sims, scale, mask)) == pytest.approx(want)
    assert float(clip_loss(sims, scale, mask)) < float(clip_loss(sims, scale))
    everything = torch.ones(3, 3, dtype=torch.bool)  # the matching pair is never dropped
    assert float(clip_loss(sims, scale, everything)) == pytest.approx(0.0)
