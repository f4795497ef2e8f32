"""Recording-condition augmentation of single-speaker utterances (numpy, seeded).

What separates synthetic from recorded speech besides the voice is the channel: microphones
colour the spectrum and band-limit it, rooms add reverberation, and every recording has a noise
floor. :func:`augment` draws one such channel per utterance; :func:`change_speed` resamples
(tempo, pitch and formants together, as Kaldi-style speed perturbation, Ko et al. 2015).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from scipy.signal import butter, fftconvolve, resample_poly, sosfilt


def change_speed(audio: np.ndarray, factor: float) -> np.ndarray:
    """Play ``audio`` ``factor`` times faster (``factor > 1`` is shorter and higher)."""
    ratio = Fraction(factor).limit_denominator(64)
    if ratio == 1:
        return audio
    return resample_poly(audio, ratio.denominator, ratio.numerator).astype(np.float32)


def peaking_sos(freq: float, gain_db: float, q: float, sample_rate: int) -> np.ndarray:
    """One peaking-EQ biquad as a second-order section (RBJ Audio EQ Cookbook)."""
    a = 10 ** (gain_db / 40)
    w = 2 * np.pi * freq / sample_rate
    alpha = np.sin(w) / (2 * q)
    b = np.array([1 + alpha * a, -2 * np.cos(w), 1 - alpha * a])
    den = np.array([1 + alpha / a, -2 * np.cos(w), 1 - alpha / a])
    return np.concatenate([b / den[0], den / den[0]])[None]


def equalize(audio: np.ndarray, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """1-3 random peaking filters (+-6 dB); half the time also a telephone-like band limit."""
    nyquist = sample_rate / 2
    sections = [
        peaking_sos(
            float(np.exp(rng.uniform(np.log(150), np.log(0.85 * nyquist)))),
            float(rng.uniform(-6, 6)), float(rng.uniform(0.7, 2.0)), sample_rate,
        )
        for _ in range(int(rng.integers(1, 4)))
    ]  # fmt: skip
    if rng.random() < 0.5:
        sections.append(butter(2, rng.uniform(80, 300), "highpass", fs=sample_rate, output="sos"))
        low = rng.uniform(0.65, 0.95) * nyquist
        sections.append(butter(4, low, "lowpass", fs=sample_rate, output="sos"))
    return sosfilt(np.concatenate(sections), audio).astype(np.float32)


def room_response(rng: np.random.Generator, sample_rate: int, rt60: float) -> np.ndarray:
    """Direct path plus an exponentially decaying noise tail of reverberation time ``rt60`` s,
    at a random direct-to-reverberant ratio of 3-12 dB (a small, mildly reverberant room)."""
    n = max(2, int(rt60 * sample_rate))
    t = np.arange(n) / sample_rate
    tail = rng.standard_normal(n) * np.exp(-6.91 * t / rt60)
    tail[: int(0.003 * sample_rate) + 1] = 0.0  # first reflections arrive a few ms late
    drr = 10 ** (rng.uniform(3, 12) / 10)
    tail *= 1.0 / np.sqrt(drr * max(float((tail**2).sum()), 1e-12))
    tail[0] = 1.0
    return tail.astype(np.float32)


def noise_floor(rng: np.random.Generator, length: int) -> np.ndarray:
    """Unit-RMS noise with a ``1/f^alpha`` spectrum, alpha in [0, 2] (white to brown)."""
    spectrum = np.fft.rfft(rng.standard_normal(length))
    freqs = np.maximum(np.arange(len(spectrum)), 1.0)
    noise = np.fft.irfft(spectrum / freqs ** (rng.uniform(0, 2) / 2), length)
    return (noise / max(float(np.sqrt((noise**2).mean())), 1e-12)).astype(np.float32)


def augment(audio: np.ndarray, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """A random recording channel: EQ (p=0.8), light reverb (p=0.5, RT60 0.1-0.4 s), a noise
    floor at 20-45 dB SNR (p=0.8), and a gain of -6..+6 dB (p=1). Same length; float32."""
    out = audio.astype(np.float32)
    if rng.random() < 0.8:
        out = equalize(out, rng, sample_rate)
    if rng.random() < 0.5:
        rir = room_response(rng, sample_rate, float(rng.uniform(0.1, 0.4)))
        out = fftconvolve(out, rir)[: len(out)].astype(np.float32)
    if rng.random() < 0.8:
        rms = float(np.sqrt((out**2).mean()))
        out = out + noise_floor(rng, len(out)) * rms * 10 ** (-rng.uniform(20, 45) / 20)
    return (out * 10 ** (rng.uniform(-6, 6) / 20)).astype(np.float32)
