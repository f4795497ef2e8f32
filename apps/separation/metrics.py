"""Separation metrics with permutation-invariant training (PIT).

- SI-SDR / SI-SNR (Le Roux et al., "SDR - half-baked or well done?", ICASSP 2019): both signals
  made zero-mean, target projected onto the reference, ``10 log10(|s_t|² / |e|²)`` with an
  ``eps`` guard (SpeechBrain's ``get_si_snr_with_pitwrapper`` uses the same zero-mean form).
- SDR (Vincent et al., 2006, BSS Eval): the reference passed through the best
  ``filter_length``-tap FIR filter (least squares) is the target; the rest is distortion.
- PIT (Yu et al., 2017): the best permutation of estimates per utterance.
- Improvements (``*_i``) are measured against the unprocessed mixture used as every estimate.

Shapes: estimates and references ``(B, K, T)``; mixture ``(B, T)``; results ``(B,)``.
"""

from __future__ import annotations

import itertools

import torch

EPS = 1e-8


def si_sdr(estimate: torch.Tensor, reference: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Scale-invariant SDR in dB over the last axis (zero-mean)."""
    estimate = estimate - estimate.mean(-1, keepdim=True)
    reference = reference - reference.mean(-1, keepdim=True)
    scale = (estimate * reference).sum(-1, keepdim=True) / (
        reference.pow(2).sum(-1, keepdim=True) + eps
    )
    target = scale * reference
    noise = estimate - target
    return 10 * torch.log10(target.pow(2).sum(-1) / (noise.pow(2).sum(-1) + eps) + eps)


def sdr(
    estimate: torch.Tensor, reference: torch.Tensor, filter_length: int = 512, eps: float = EPS
) -> torch.Tensor:
    """BSS Eval SDR in dB over the last axis with a ``filter_length``-tap distortion filter.

    Solves the Toeplitz normal equations ``R h = c`` of the reference autocorrelation ``R`` and
    the reference/estimate cross-correlation ``c`` in float64, by Cholesky (``R`` plus a
    ridge is positive definite). Not by LU: with torch 2.11's MKL, batched LU returns zero
    pivots once ``torch.set_num_threads`` has changed the thread count in the process.
    """
    for name, x in (("estimate", estimate), ("reference", reference)):
        if not torch.isfinite(x).all():
            raise ValueError(f"SDR: the {name} contains NaN or Inf values")
    dtype = estimate.dtype
    est, ref = estimate.double(), reference.double()
    n = est.shape[-1]
    # unit-norm reference keeps the system well conditioned; SDR is scale invariant in ref.
    ref = ref / (ref.norm(dim=-1, keepdim=True) + eps)
    nfft = 1 << (n + filter_length - 1).bit_length()
    ref_f = torch.fft.rfft(ref, nfft)
    est_f = torch.fft.rfft(est, nfft)
    acf = torch.fft.irfft(ref_f.abs().pow(2), nfft)[..., :filter_length]
    xcorr = torch.fft.irfft(ref_f.conj() * est_f, nfft)[..., :filter_length]
    lags = torch.arange(filter_length, device=est.device)
    toeplitz = acf[..., (lags[:, None] - lags[None, :]).abs()]
    toeplitz = toeplitz + eps * torch.eye(filter_length, dtype=toeplitz.dtype, device=est.device)
    factor, info = torch.linalg.cholesky_ex(toeplitz)
    if (info > 0).any():
        raise RuntimeError("SDR: the reference autocorrelation is not positive definite")
    h = torch.cholesky_solve(xcorr.unsqueeze(-1), factor).squeeze(-1)
    coherence = (xcorr * h).sum(-1)  # |projection|²
    energy = est.pow(2).sum(-1)
    ratio = coherence / (energy - coherence).clamp(min=eps)
    return (10 * torch.log10(ratio.clamp(min=eps))).to(dtype)


def pairwise_si_sdr(estimates: torch.Tensor, references: torch.Tensor, eps: float = EPS):
    """``(B, K_est, K_ref)`` SI-SDR of every estimate/reference pair from inner products only.

    Expanding ``(B, K, K, T)`` copies would cost K² times the audio (gigabytes in float64 for
    a 3-talker, 10-minute file); with ``c = <e, r>``, ``scale = c / (|r|² + eps)``, the target
    energy is ``scale² |r|²`` and the residual ``|e|² - 2 scale c + scale² |r|²``.
    """
    est = estimates - estimates.mean(-1, keepdim=True)
    ref = references - references.mean(-1, keepdim=True)
    cross = est @ ref.transpose(1, 2)  # (B, K, K)
    ref_energy = ref.pow(2).sum(-1).unsqueeze(1)  # (B, 1, K)
    est_energy = est.pow(2).sum(-1).unsqueeze(2)  # (B, K, 1)
    scale = cross / (ref_energy + eps)
    target = scale.pow(2) * ref_energy
    residual = (est_energy - 2 * scale * cross + target).clamp(min=0)
    return 10 * torch.log10(target / (residual + eps) + eps)


def best_permutation(pairwise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Maximise the mean of ``pairwise[b, perm[j], j]`` over permutations (brute force, K <= 8).

    Returns:
        ``(best mean (B,), perm (B, K))`` where estimate ``perm[b, j]`` matches reference j.
    """
    k = pairwise.shape[-1]
    perms = torch.tensor(list(itertools.permutations(range(k))), device=pairwise.device)
    cols = torch.arange(k, device=pairwise.device)
    scores = pairwise[:, perms, cols].mean(-1)  # (B, P)
    best, idx = scores.max(dim=1)
    return best, perms[idx]


def check_pair(estimates: torch.Tensor, references: torch.Tensor) -> None:
    if estimates.dim() != 3 or estimates.shape != references.shape:
        raise ValueError(
            "estimates and references must both be (B, K, T) of the same shape, got "
            f"{tuple(estimates.shape)} and {tuple(references.shape)}"
        )


def pit_si_sdr(
    estimates: torch.Tensor, references: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean SI-SDR of the best permutation per utterance: ``((B,), perm (B, K))``.

    The permutation is chosen on :func:`pairwise_si_sdr`; the returned value is recomputed
    with :func:`si_sdr` on the matched pairs (exact, and the gradient path of the loss).
    Memory is O(B K T)."""
    check_pair(estimates, references)
    with torch.no_grad():
        _, perm = best_permutation(pairwise_si_sdr(estimates, references))
    ordered = torch.gather(estimates, 1, perm.unsqueeze(-1).expand_as(estimates))
    return si_sdr(ordered, references).mean(-1), perm


def pit_si_snr_loss(estimates: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
    """Permutation-invariant negative SI-SNR averaged over the batch (training loss)."""
    return -pit_si_sdr(estimates, references)[0].mean()


def separation_metrics(
    estimates: torch.Tensor, references: torch.Tensor, mixture: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Per-utterance ``si_sdr``, ``si_sdri``, ``sdr``, ``sdri`` (dB), each ``(B,)``.

    The permutation is chosen by SI-SDR and reused for SDR; the baselines use the mixture as
    the estimate of every source.
    """
    check_pair(estimates, references)
    if mixture.shape != (estimates.shape[0], estimates.shape[2]):
        raise ValueError(f"mixture must be (B, T), got {tuple(mixture.shape)}")
    best, perm = pit_si_sdr(estimates, references)
    ordered = torch.gather(estimates, 1, perm.unsqueeze(-1).expand_as(estimates))
    mix = mixture.unsqueeze(1)  # broadcast over the K references, never copied
    base_si = si_sdr(mix, references).mean(-1)
    sdr_est = sdr(ordered, references).mean(-1)
    sdr_mix = sdr(mix.expand_as(references), references).mean(-1)
    return {
        "si_sdr": best,
        "si_sdri": best - base_si,
        "sdr": sdr_est,
        "sdri": sdr_est - sdr_mix,
    }
