"""Separating recordings of any length, rate and channel count.

By default a recording is separated in one forward pass (as published numbers are computed).
With ``chunk_seconds``, long inputs are cut into overlapping windows, each separated on its
own; before a window is added to the output its sources are reordered to the permutation
that best matches what is
already written over the overlap (normalised correlation), so speakers do not swap at window
borders; windows are cross-faded with linear ramps (overlap-add normalised by the summed
weights). Peak memory is the output plus one batch of windows, independent of the length.
"""

from __future__ import annotations

import io
import itertools
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from tessera.apps.separation.metrics import separation_metrics
from tessera.datamodules.separation.audio import check_waveform, read_audio, resample, to_mono

# Shortest input passed to a model (shorter ones are zero-padded): a few encoder frames.
MIN_SAMPLES = 64


def chunk_starts(length: int, window: int, hop: int) -> list[int]:
    """Window starts covering ``[0, length)``; the last window ends exactly at ``length``."""
    if length <= window:
        return [0]
    starts = list(range(0, length - window, hop))
    return [*starts, length - window]


def best_overlap_permutation(written: torch.Tensor, new: torch.Tensor) -> tuple[int, ...]:
    """Permutation ``p`` maximising ``sum_k corr(written[k], new[p[k]])``; ``(K, L)`` inputs."""
    a = written / written.norm(dim=-1, keepdim=True).clamp(min=1e-8)
    b = new / new.norm(dim=-1, keepdim=True).clamp(min=1e-8)
    corr = a @ b.T  # (K, K)
    k = corr.shape[0]
    return max(itertools.permutations(range(k)), key=lambda p: float(corr[range(k), p].sum()))


def overlap_add_separate(
    mix: torch.Tensor,
    separate: Callable[[torch.Tensor], torch.Tensor],
    num_spks: int,
    window: int,
    overlap: int,
    batch_size: int = 4,
) -> torch.Tensor:
    """Separate ``mix (T,)`` window by window with permutation alignment; returns ``(K, T)``.

    Args:
        mix: mono waveform.
        separate: ``(N, window) -> (N, K, window)`` (the model on a batch of windows).
        num_spks: K.
        window: window length in samples.
        overlap: samples shared by consecutive windows (``< window``).
        batch_size: windows per call of ``separate``.
    """
    if not 0 <= overlap < window:
        raise ValueError(f"overlap={overlap} must be in [0, window={window})")
    t = mix.shape[-1]
    if t <= window:
        return separate(mix.unsqueeze(0))[0]
    starts = chunk_starts(t, window, window - overlap)
    out = torch.zeros(num_spks, t, dtype=mix.dtype, device=mix.device)
    weight = torch.zeros(t, dtype=mix.dtype, device=mix.device)
    ramp = torch.ones(window, dtype=mix.dtype, device=mix.device)
    if overlap:
        up = torch.arange(1, overlap + 1, dtype=mix.dtype, device=mix.device) / (overlap + 1)
        ramp[:overlap], ramp[-overlap:] = up, up.flip(0)
    written_end = 0
    for i in range(0, len(starts), batch_size):
        batch_starts = starts[i : i + batch_size]
        chunks = torch.stack([mix[s : s + window] for s in batch_starts])
        estimates = separate(chunks)  # (N, K, window)
        for s, est in zip(batch_starts, estimates, strict=True):
            shared = written_end - s
            if shared > 0:
                done = out[:, s:written_end] / weight[s:written_end].clamp(min=1e-8)
                est = est[list(best_overlap_permutation(done, est[:, :shared]))]
            out[:, s : s + window] += est * ramp
            weight[s : s + window] += ramp
            written_end = s + window
    return out / weight.clamp(min=1e-8)


@dataclass
class Separation:
    """Result of :class:`Separator`: ``sources (K, T)`` at ``sample_rate`` (the input's rate),
    and, when a reference was given, ``metrics`` (``si_sdr``, ``si_sdri``, ``sdr``, ``sdri``)."""

    sources: np.ndarray
    sample_rate: int
    metrics: dict[str, float] | None = None


def as_waveform(audio, sample_rate: int | None) -> tuple[torch.Tensor, int]:
    """Mono float32 ``(T,)`` and its rate from a path, wav/flac bytes, ``(rate, array)`` tuple
    (Gradio) or an array/tensor shaped ``(T,)``, ``(T, C)`` or ``(C, T)`` with C <= 2."""
    if isinstance(audio, (str, Path)):
        return read_audio(audio)
    if isinstance(audio, (bytes, bytearray)):
        try:
            data, rate = sf.read(io.BytesIO(audio), dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, TypeError) as err:
            raise ValueError(f"audio bytes are not a readable audio file ({err})") from err
        return check_waveform(to_mono(torch.from_numpy(data))), rate
    if isinstance(audio, tuple) and len(audio) == 2 and isinstance(audio[0], int):
        sample_rate, audio = audio
    if sample_rate is None:
        raise ValueError("sample_rate is required for in-memory audio")
    arr = audio if isinstance(audio, torch.Tensor) else torch.from_numpy(np.asarray(audio))
    if not arr.is_floating_point():
        arr = arr.float() / float(torch.iinfo(arr.dtype).max + 1)
    arr = arr.float()
    if arr.dim() == 2 and arr.shape[0] <= 2 < arr.shape[1]:
        arr = arr.T  # channels first -> (T, C)
    return check_waveform(to_mono(arr)), int(sample_rate)


class Separator:
    """Separates single recordings with a separation model (see :func:`~.load`).

    Args:
        model: ``(B, T) -> (B, K, T)`` separator.
        sample_rate: the model's rate; inputs are resampled in and the outputs back out.
        num_spks: K.
        chunk_seconds: window length of the overlap-add path (longer inputs are chunked);
            None separates the whole recording in one forward pass.
        overlap_seconds: overlap between windows.
        batch_size: windows per model call.

    Inputs shorter than :data:`MIN_SAMPLES` are zero-padded for the model and cropped back.

    Example::

        separator = tessera.apps.separation.load("separation-mossformer-tiny")
        result = separator("meeting.wav")      # result.sources: (K, T) at the file's rate
    """

    def __init__(
        self,
        model: torch.nn.Module,
        sample_rate: int,
        num_spks: int,
        chunk_seconds: float | None = 4.0,
        overlap_seconds: float = 1.0,
        batch_size: int = 4,
    ):
        self.model = model
        self.sample_rate = sample_rate
        self.num_spks = num_spks
        self.window = None if chunk_seconds is None else int(chunk_seconds * sample_rate)
        self.overlap = int(overlap_seconds * sample_rate)
        if self.window is not None and not 0 <= self.overlap < self.window:
            raise ValueError(
                f"overlap_seconds={overlap_seconds} must be in [0, chunk_seconds={chunk_seconds})"
            )
        self.batch_size = batch_size

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _forward(self, chunks: torch.Tensor) -> torch.Tensor:
        """The model on ``(N, L)``, zero-padded to at least :data:`MIN_SAMPLES`."""
        length = chunks.shape[-1]
        if length < MIN_SAMPLES:
            chunks = torch.nn.functional.pad(chunks, (0, MIN_SAMPLES - length))
        return self.model(chunks)[..., :length]

    @torch.no_grad()
    def separate_waveform(self, mix: torch.Tensor) -> torch.Tensor:
        """``(T,)`` at the model rate -> ``(K, T)``: one forward pass, or chunked when
        ``chunk_seconds`` is set and the input is longer than one window."""
        mix = mix.to(self.device, torch.float32)
        was_training = self.model.training
        self.model.eval()
        try:
            if self.window is None:
                return self._forward(mix.unsqueeze(0))[0]
            return overlap_add_separate(
                mix, self._forward, self.num_spks, self.window, self.overlap, self.batch_size
            )
        finally:
            self.model.train(was_training)

    def __call__(self, audio, sample_rate: int | None = None, reference=None) -> Separation:
        """Separate ``audio`` (path, bytes, ``(rate, array)`` or array with ``sample_rate``).

        Args:
            audio: the mixture.
            sample_rate: rate of an in-memory array.
            reference: optional ``(K, T)`` clean sources at the input rate (array or list of
                paths) to score the separation with SI-SDRi/SDRi.

        Returns:
            :class:`Separation` at the input's own rate.

        Raises:
            ValueError: unreadable, empty, non-finite or >2-channel input.
        """
        mix, rate = as_waveform(audio, sample_rate)
        if float(mix.abs().max()) == 0.0:
            warnings.warn("the input is silent; returning silent sources", UserWarning, 2)
            return Separation(np.zeros((self.num_spks, len(mix)), np.float32), rate)
        model_in = resample(mix, rate, self.sample_rate)
        if model_in.numel() < 1:
            raise ValueError(
                f"audio of {len(mix)} sample(s) at {rate} Hz has no sample at the model's "
                f"{self.sample_rate} Hz"
            )
        est = resample(self.separate_waveform(model_in).cpu(), self.sample_rate, rate)
        est = torch.nn.functional.pad(est, (0, max(0, len(mix) - est.shape[-1])))[:, : len(mix)]
        metrics = None
        if reference is not None:
            metrics = score(est, mix, reference_waveforms(reference, rate, len(mix)))
        return Separation(est.numpy().astype(np.float32), rate, metrics)


def reference_waveforms(reference, rate: int, length: int) -> torch.Tensor:
    """``(K, length)`` references from paths or an array, at ``rate``."""
    if isinstance(reference, (list, tuple)) and reference and isinstance(reference[0], (str, Path)):
        refs = [read_audio(p, rate)[0] for p in reference]
    else:
        arr = reference if isinstance(reference, torch.Tensor) else torch.as_tensor(reference)
        if arr.dim() != 2:
            raise ValueError(f"reference must be (K, T), got shape {tuple(arr.shape)}")
        refs = list(arr.float())
    return torch.stack(
        [torch.nn.functional.pad(r, (0, max(0, length - len(r))))[:length] for r in refs]
    )


def score(est: torch.Tensor, mix: torch.Tensor, refs: torch.Tensor) -> dict[str, float]:
    """Metrics of one separation: ``est``/``refs`` ``(K, T)``, ``mix`` ``(T,)``."""
    if refs.shape != est.shape:
        raise ValueError(f"reference must have {est.shape[0]} sources, got {refs.shape[0]}")
    values = separation_metrics(est[None].double(), refs[None].double(), mix[None].double())
    return {k: float(v[0]) for k, v in values.items()}
