"""Retrieval metrics as the X-Pool / CLIP4Clip evaluation computes them.

Following ``layer6ai-labs/xpool`` ``modules/metrics.py`` (the same as CLIP4Clip's
``tensor_text_to_video_metrics``): the text x video similarities are laid out per video as
``(V, max captions per video, V)`` padded with -inf;

- **t2v**: every caption is a query; its rank is the position of its own video when the
  row of videos is sorted by similarity (descending);
- **v2t**: each video is a query and each video's caption set a candidate, scored by its
  best caption (max over the set); the rank is the position of the video's own set.

Ranks are 0-based internally, so ``R@K = 100 * mean(rank < K)``, ``MdR = median(rank) + 1``,
``MnR = mean(rank) + 1``. Ties are broken by index order (a stable sort), so a constant
similarity matrix scores at chance, never at 100.

:func:`dual_softmax` is an *optional* hub-aware re-scoring of the whole query x gallery
matrix (not the published X-Pool protocol, which scores raw cosines).
"""

from __future__ import annotations

import torch

KS = (1, 5, 10)


def _ranks_of_targets(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """0-based rank of ``scores[i, targets[i]]`` in row ``i`` sorted descending (stable)."""
    order = torch.argsort(scores, dim=1, descending=True, stable=True)
    return (order == targets[:, None]).float().argmax(dim=1)


def rank_metrics(ranks: torch.Tensor, prefix: str) -> dict[str, float]:
    """``{prefix}_r1/_r5/_r10`` (percent), ``{prefix}_mdr``, ``{prefix}_mnr`` from 0-based ranks."""
    ranks = ranks.double()
    out = {f"{prefix}_r{k}": float(100.0 * (ranks < k).double().mean()) for k in KS}
    out[f"{prefix}_mdr"] = float(torch.quantile(ranks, 0.5)) + 1.0
    out[f"{prefix}_mnr"] = float(ranks.mean()) + 1.0
    return out


def retrieval_ranks(
    sims: torch.Tensor, text_video: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """0-based t2v ranks ``(T,)`` and v2t ranks ``(V,)``.

    Args:
        sims: ``(T, V)`` similarity of every caption with every video.
        text_video: ``(T,)`` index of each caption's video; every video has >= 1 caption.
    """
    num_texts, num_videos = sims.shape
    if text_video.shape != (num_texts,):
        raise ValueError(f"text_video must be ({num_texts},), got {tuple(text_video.shape)}")
    counts = torch.bincount(text_video, minlength=num_videos)
    if counts.numel() != num_videos or bool((counts == 0).any()):
        raise ValueError("every video needs at least one caption, and indices must be < V")
    sims = sims.double().nan_to_num(nan=float("-inf"))
    t2v = _ranks_of_targets(sims, text_video)
    # best caption of each caption set against each video: (V sets, V videos)
    best = torch.full((num_videos, num_videos), float("-inf"), dtype=sims.dtype)
    best = best.scatter_reduce(0, text_video[:, None].expand(-1, num_videos), sims, "amax")
    v2t = _ranks_of_targets(best.T, torch.arange(num_videos))
    return t2v, v2t


def dual_softmax(sims: torch.Tensor, temperature: float) -> torch.Tensor:
    """Dual-softmax inference (DSL, Cheng et al., 2021, arXiv:2109.04290; used by CAMoE):
    each similarity times the softmax over all *queries* of its video's column,

        ``s'[t, v] = s[t, v] * softmax_t(temperature * s[:, v])``,

    so a "hub" video that is close to many queries has its scores shared out among them.
    It is transductive (every query of the evaluation set takes part): an evaluation option,
    not part of the published X-Pool / CLIP4Clip protocol. ``sims``: ``(T, V)``.
    """
    return sims * torch.softmax(sims * temperature, dim=0)


def retrieval_metrics(sims: torch.Tensor, text_video: torch.Tensor) -> dict[str, float]:
    """``t2v_r1, t2v_r5, t2v_r10, t2v_mdr, t2v_mnr`` and the same for ``v2t`` (recalls in %)."""
    t2v, v2t = retrieval_ranks(sims, text_video)
    return rank_metrics(t2v, "t2v") | rank_metrics(v2t, "v2t")
