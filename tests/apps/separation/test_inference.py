"""Long-audio overlap-add with permutation alignment, input handling and bad input."""

import numpy as np
import pytest
import soundfile as sf
import torch

from tessera.apps.separation.inference import (
    Separator,
    as_waveform,
    best_overlap_permutation,
    chunk_starts,
    overlap_add_separate,
)
from tessera.apps.separation.model import MossFormer


def speakers(t: int, seed: int = 0) -> torch.Tensor:
    """Two 'speakers' made of utterances (tone bursts) at known positions, (2, t)."""
    g = torch.Generator().manual_seed(seed)
    time = torch.arange(t) / 8000
    sources = torch.zeros(2, t)
    for k, base in enumerate((180.0, 420.0)):
        pos = 0
        while pos < t:
            n = int(torch.randint(2000, 9000, (1,), generator=g))
            f = base * (1 + 0.2 * float(torch.rand(1, generator=g)))
            seg = slice(pos, min(t, pos + n))
            sources[k, seg] = torch.sin(2 * torch.pi * f * time[seg]) * float(
                0.2 + torch.rand(1, generator=g)
            )
            pos += n + int(torch.randint(0, 1500, (1,), generator=g))
    return sources


class ShufflingOracle:
    """Returns each window's true sources in a random order, as a separator may do."""

    def __init__(self, sources, window, overlap):
        self.sources = sources
        self.starts = iter(chunk_starts(sources.shape[1], window, window - overlap))
        self.window = window
        self.g = torch.Generator().manual_seed(1)

    def __call__(self, chunks):
        out = []
        for _ in chunks:
            s = next(self.starts)
            order = torch.randperm(2, generator=self.g)
            out.append(self.sources[:, s : s + self.window][order])
        return torch.stack(out)


def test_chunk_starts_cover_the_signal():
    assert chunk_starts(100, 40, 30) == [0, 30, 60]
    assert chunk_starts(40, 40, 30) == [0]
    assert chunk_starts(95, 40, 30) == [0, 30, 55]


@pytest.mark.parametrize("batch_size", [1, 3])
def test_overlap_add_realigns_speakers_across_windows(batch_size):
    t, window, overlap = 8000 * 30 + 123, 8000 * 4, 8000
    sources = speakers(t)
    oracle = ShufflingOracle(sources, window, overlap)
    out = overlap_add_separate(sources.sum(0), oracle, 2, window, overlap, batch_size)
    # one global permutation, no swap at any window border: exact reconstruction
    if torch.dot(out[0], sources[0]) < torch.dot(out[0], sources[1]):
        out = out.flip(0)
    torch.testing.assert_close(out, sources, atol=1e-5, rtol=1e-5)


def test_without_alignment_the_oracle_would_swap():
    """The test above is not vacuous: the oracle does permute windows."""
    t, window, overlap = 8000 * 30, 8000 * 4, 8000
    sources = speakers(t)
    oracle = ShufflingOracle(sources, window, overlap)
    chunks = torch.stack([sources.sum(0)[s : s + window] for s in chunk_starts(t, window, 24000)])
    outs = oracle(chunks)
    first = [bool(torch.equal(o[0], sources[0, s : s + window])) for o, s in zip(
        outs, chunk_starts(t, window, 24000), strict=True)]  # fmt: skip
    assert any(first) and not all(first)


def test_best_overlap_permutation_three_speakers():
    written = torch.randn(3, 500)
    assert best_overlap_permutation(written, written[[2, 0, 1]] * 0.5) == (1, 2, 0)


def test_separator_resamples_and_keeps_length_and_rate():
    model = MossFormer(encoder_dim=16, channels=16, num_blocks=1, query_key_dim=16).eval()
    sep = Separator(model, 8000, 2, chunk_seconds=1.0, overlap_seconds=0.25)
    audio = np.random.default_rng(0).standard_normal(16000 * 3 + 7).astype(np.float32) * 0.1
    result = sep(audio, sample_rate=16000)
    assert result.sample_rate == 16000 and result.sources.shape == (2, len(audio))
    assert np.isfinite(result.sources).all()
    ref = np.stack([audio, audio])
    assert set(sep(audio, 16000, reference=ref).metrics) == {"si_sdr", "si_sdri", "sdr", "sdri"}


def test_separator_chunked_memory_path_matches_whole_when_one_window():
    model = MossFormer(encoder_dim=16, channels=16, num_blocks=1, query_key_dim=16).eval()
    audio = torch.randn(4000) * 0.1
    whole = Separator(model, 8000, 2, 1.0, 0.25).separate_waveform(audio)
    with torch.no_grad():
        torch.testing.assert_close(whole, model(audio[None])[0])


def test_inputs_paths_bytes_stereo_int16(tmp_path):
    stereo = np.random.default_rng(0).standard_normal((800, 2)).astype(np.float32) * 0.1
    sf.write(tmp_path / "a.wav", stereo, 8000)
    with pytest.warns(UserWarning, match="stereo"):
        mono, rate = as_waveform(tmp_path / "a.wav", None)
    assert rate == 8000 and mono.shape == (800,)
    with pytest.warns(UserWarning, match="stereo"):
        from_bytes, _ = as_waveform((tmp_path / "a.wav").read_bytes(), None)
    torch.testing.assert_close(from_bytes, mono, atol=1e-4, rtol=0)
    ints = (stereo[:, 0] * 32767).astype(np.int16)
    gr_audio, rate = as_waveform((16000, ints), None)
    assert rate == 16000 and gr_audio.dtype == torch.float32
    channels_first, _ = as_waveform(stereo.T[:1], 8000)
    assert channels_first.shape == (800,)


@pytest.mark.parametrize(
    "audio, match",
    [
        (np.zeros(0, np.float32), "no samples"),
        (np.array([0.1, np.nan, 0.2], np.float32), "NaN/Inf"),
        (np.array([0.1, np.inf, 0.2], np.float32), "NaN/Inf"),
        (np.zeros((100, 3), np.float32), "3 channels"),
        (b"not audio at all", "not a readable audio file"),
    ],
)
def test_bad_input_is_a_clear_error(audio, match):
    model = MossFormer(encoder_dim=16, channels=16, num_blocks=1, query_key_dim=16)
    with pytest.raises(ValueError, match=match):
        Separator(model, 8000, 2)(audio, sample_rate=8000)


@pytest.mark.parametrize("length", [1, 2, 15, 63])
def test_inputs_shorter_than_the_encoder_are_padded_internally(length):
    model = MossFormer(encoder_dim=16, channels=16, num_blocks=1, query_key_dim=16)
    audio = np.random.default_rng(length).standard_normal(length).astype(np.float32) * 0.1
    for chunk in (None, 0.5):
        result = Separator(model, 8000, 2, chunk_seconds=chunk, overlap_seconds=0.1)(
            audio, sample_rate=8000
        )
        assert result.sources.shape == (2, length) and np.isfinite(result.sources).all()


def test_silence_warns_and_returns_silent_tracks():
    model = MossFormer(encoder_dim=16, channels=16, num_blocks=1, query_key_dim=16)
    with pytest.warns(UserWarning, match="silent"):
        result = Separator(model, 8000, 2)(np.zeros(500, np.float32), sample_rate=8000)
    assert result.sources.shape == (2, 500) and not result.sources.any()


def test_in_memory_array_needs_a_rate():
    model = MossFormer(encoder_dim=16, channels=16, num_blocks=1, query_key_dim=16)
    with pytest.raises(ValueError, match="sample_rate"):
        Separator(model, 8000, 2)(np.ones(100, np.float32))
