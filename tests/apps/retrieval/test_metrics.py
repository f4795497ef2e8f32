"""t2v/v2t R@K, MdR, MnR against an independent implementation and X-Pool's padded layout."""

import numpy as np
import pytest
import torch

from tessera.apps.retrieval.metrics import dual_softmax, retrieval_metrics, retrieval_ranks


def _rank_by_definition(scores, target):
    """0-based rank: items scoring higher, plus equal-scoring items listed before it."""
    s = scores[target]
    return sum(1 for j, x in enumerate(scores) if x > s or (x == s and j < target))


def _reference(sims, text_video):
    """Loops over queries, written from the definition (no sorting)."""
    sims = np.asarray(sims, dtype=float)
    t2v = [_rank_by_definition(sims[t], v) for t, v in enumerate(text_video)]
    num_videos = sims.shape[1]
    v2t = []
    for v in range(num_videos):
        best = [max(sims[t, v] for t in range(len(text_video)) if text_video[t] == g)
                for g in range(num_videos)]  # fmt: skip
        v2t.append(_rank_by_definition(best, v))

    def summary(ranks, p):
        r = np.asarray(ranks)
        out = {f"{p}_r{k}": 100.0 * np.mean(r < k) for k in (1, 5, 10)}
        return out | {f"{p}_mdr": np.median(r) + 1, f"{p}_mnr": np.mean(r) + 1}

    return summary(t2v, "t2v") | summary(v2t, "v2t")


def _xpool_padded(sims, text_video):
    """X-Pool's layout: (V, max captions, V) padded with -inf, double argsort (stable)."""
    num_videos = sims.shape[1]
    per = [[t for t in range(len(text_video)) if text_video[t] == v] for v in range(num_videos)]
    width = max(len(p) for p in per)
    padded = torch.full((num_videos, width, num_videos), float("-inf"), dtype=torch.float64)
    for v, texts in enumerate(per):
        padded[v, : len(texts)] = sims[texts]
    stacked = padded.permute(1, 0, 2)
    order = torch.argsort(stacked, dim=-1, descending=True, stable=True)
    ranks = torch.argsort(order, dim=-1, stable=True)
    t2v = torch.diagonal(ranks, dim1=1, dim2=2).flatten()
    valid = ~torch.isinf(torch.diagonal(padded, dim1=0, dim2=2).flatten())
    best = padded.max(dim=1).values.T
    order = torch.argsort(best, dim=-1, descending=True, stable=True)
    v2t = torch.diag(torch.argsort(order, dim=-1, stable=True))
    return t2v[valid], v2t


# 4 videos; videos 0 and 2 have 3 and 2 captions; ties inside rows and across caption sets
SIMS = torch.tensor([
    [0.9, 0.9, 0.1, 0.0],   # video 0, tie with video 1 (video 0 listed first: rank 0)
    [0.2, 0.5, 0.5, 0.5],   # video 0, behind three tied videos: rank 3
    [0.3, 0.3, 0.3, 0.3],   # video 0, all tied
    [0.1, 0.8, 0.8, 0.2],   # video 1, tied with video 2 (listed later): rank 0
    [0.6, 0.1, 0.6, 0.0],   # video 2, tied with video 0 (listed before): rank 1
    [0.0, 0.2, 0.7, 0.1],   # video 2
    [0.4, 0.4, 0.4, 0.4],   # video 3, all tied: rank 3
], dtype=torch.float64)  # fmt: skip
TEXT_VIDEO = torch.tensor([0, 0, 0, 1, 2, 2, 3])


def test_metrics_match_definition_and_xpool_layout_with_ties():
    got = retrieval_metrics(SIMS, TEXT_VIDEO)
    want = _reference(SIMS.numpy(), TEXT_VIDEO.tolist())
    assert got.keys() == want.keys()
    for key in want:
        assert got[key] == pytest.approx(want[key]), key
    t2v, v2t = retrieval_ranks(SIMS, TEXT_VIDEO)
    ref_t2v, ref_v2t = _xpool_padded(SIMS, TEXT_VIDEO.tolist())
    assert t2v.tolist() == [0, 3, 0, 0, 1, 0, 3]
    # X-Pool lists the ranks by caption slot, then video: the same ranks in another order
    assert sorted(t2v.tolist()) == sorted(ref_t2v.tolist())
    assert v2t.tolist() == ref_v2t.tolist()


def test_random_matrices_single_and_multi_caption():
    gen = torch.Generator().manual_seed(1)
    for num_videos, per_video in ((30, 1), (12, 4)):
        text_video = torch.arange(num_videos).repeat_interleave(per_video)
        sims = torch.randint(0, 6, (len(text_video), num_videos), generator=gen).double()
        got = retrieval_metrics(sims, text_video)
        want = _reference(sims.numpy(), text_video.tolist())
        for key in want:
            assert got[key] == pytest.approx(want[key]), key


def test_perfect_constant_and_bad_inputs():
    eye = torch.eye(5)
    perfect = retrieval_metrics(eye, torch.arange(5))
    assert perfect["t2v_r1"] == 100 and perfect["v2t_mdr"] == 1 and perfect["t2v_mnr"] == 1
    constant = retrieval_metrics(torch.zeros(5, 5), torch.arange(5))
    assert constant["t2v_r1"] == pytest.approx(20.0)  # chance, not 100
    assert constant["t2v_mnr"] == pytest.approx(3.0)
    with pytest.raises(ValueError, match="at least one caption"):
        retrieval_metrics(torch.zeros(2, 3), torch.tensor([0, 1]))


def test_dual_softmax_matches_definition_and_demotes_a_hub():
    # video 0 is a hub: the top hit of all three queries by raw cosine
    sims = torch.tensor([[0.9, 0.1, 0.2], [0.8, 0.7, 0.1], [0.8, 0.1, 0.75]], dtype=torch.float64)
    temperature = 10.0
    got = dual_softmax(sims, temperature)
    for t in range(3):
        for v in range(3):
            column = [float(np.exp(temperature * sims[q, v])) for q in range(3)]
            want = float(sims[t, v]) * column[t] / sum(column)
            assert float(got[t, v]) == pytest.approx(want)
    text_video = torch.arange(3)
    assert retrieval_metrics(sims, text_video)["t2v_r1"] == pytest.approx(100 / 3)
    assert retrieval_metrics(got, text_video)["t2v_r1"] == pytest.approx(100.0)
