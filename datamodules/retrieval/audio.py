"""Audio features for the audio branch: 16 kHz Kaldi log-mel filterbanks with a validity mask.

The front end of AST (Gong et al., 2021) as the audio-aware CLIP4Clip variants use it
(AVIGATE, ``dataloaders/dataloader_msrvtt_retrieval.py``): 128 mel bins, 25 ms Hanning
windows every 10 ms, no dither, a fixed number of frames (zero-padded or cropped) and AST's
dataset normalisation. Videos without an audio track get zeros and an all-False mask.
"""

from __future__ import annotations

import numpy as np
import torch
import torchaudio.compliance.kaldi as kaldi

SAMPLE_RATE = 16000
AST_MEAN, AST_STD = -4.2677393, 4.5689974


def log_mel(
    audio: np.ndarray | torch.Tensor | None, num_frames: int = 1024, n_mels: int = 128
) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised log-mel ``(num_frames, n_mels)`` and bool mask ``(num_frames,)`` (True =
    real audio) from a mono 16 kHz waveform ``(T,)``; ``None`` gives zeros and no valid frame."""
    features = torch.zeros(num_frames, n_mels)
    mask = torch.zeros(num_frames, dtype=torch.bool)
    if audio is None:
        return features, mask
    wave = torch.as_tensor(audio, dtype=torch.float32).reshape(1, -1)
    if wave.shape[1] < 400:  # shorter than one 25 ms window
        return features, mask
    fbank = kaldi.fbank(
        wave - wave.mean(),
        htk_compat=True,
        sample_frequency=SAMPLE_RATE,
        use_energy=False,
        window_type="hanning",
        num_mel_bins=n_mels,
        dither=0.0,
        frame_shift=10,
    )
    n = min(num_frames, fbank.shape[0])
    features[:n] = (fbank[:n] - AST_MEAN) / (2 * AST_STD)
    mask[:n] = True
    return features, mask


def seconds_for(num_frames: int) -> float:
    """Audio duration that fills ``num_frames`` 10 ms frames (plus the last window)."""
    return num_frames * 0.01 + 0.015
