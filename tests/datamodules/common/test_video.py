"""PyAV video reading: interval sampling as X-Pool, seeking reads, audio, clear errors."""

import av
import numpy as np
import pytest

from tessera.datamodules.common import DataError
from tessera.datamodules.common import video as V

FPS = 10


def _ramp(num_frames: int, h: int = 32, w: int = 48) -> np.ndarray:
    """Frame i is grey 6*i, so the decoded brightness tells the frame index."""
    frames = np.zeros((num_frames, h, w, 3), np.uint8)
    frames[:] = (6 * np.arange(num_frames, dtype=np.uint8))[:, None, None, None]
    return frames


def _index_of(frames: np.ndarray) -> list[int]:
    return [int(round(float(f.mean()) / 6)) for f in frames]


def _reference_indices(num_frames, count, mode, rng=None):
    """Written from the X-Pool sampling rule: F equal intervals, middle or random frame."""
    taken = min(num_frames, count)
    bounds = [int(x) for x in np.linspace(0, num_frames, taken + 1)]
    out = []
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        last = max(a, b - 1)
        out.append((a + last) // 2 if mode == "middle" else int(rng.integers(a, last + 1)))
    return out + [out[-1]] * (count - taken)


@pytest.mark.parametrize("num_frames,count", [(300, 12), (12, 12), (13, 12), (5, 12), (1, 4)])
def test_sample_indices_match_interval_rule(num_frames, count):
    assert V.sample_indices(num_frames, count) == _reference_indices(num_frames, count, "middle")
    got = V.sample_indices(num_frames, count, "random", np.random.default_rng(3))
    assert got == _reference_indices(num_frames, count, "random", np.random.default_rng(3))
    assert len(got) == count and got == sorted(got) and max(got) < num_frames


def test_random_sampling_stays_inside_intervals_and_varies():
    rng = np.random.default_rng(0)
    draws = np.array([V.sample_indices(120, 4, "random", rng) for _ in range(200)])
    for k in range(4):
        assert draws[:, k].min() >= 30 * k and draws[:, k].max() <= 30 * k + 29
        assert len(set(draws[:, k])) > 10


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_probe_and_read_frames_by_index(tmp_path, suffix):
    t = np.arange(16000 * 4) / 16000
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    path = V.write_video(tmp_path / f"clip{suffix}", _ramp(40), fps=FPS, audio=tone)
    info = V.probe(path)
    assert (info.num_frames, info.fps, info.width, info.height) == (40, 10.0, 48, 32)
    assert info.has_audio and info.audio_sample_rate == 16000
    assert info.duration == pytest.approx(4.0, abs=0.15)
    indices = V.sample_indices(info.num_frames, 6)
    frames = V.read_frames(path, indices)
    assert frames.dtype == np.uint8 and frames.shape == (6, 32, 48, 3)
    assert _index_of(frames) == indices
    # unordered, repeated, far apart (forces seeks with a small gap), past the end
    frames = V.read_frames(path, [39, 0, 20, 20, 45], short_side=16, seek_gap=3)
    assert frames.shape == (5, 16, 24, 3)
    assert _index_of(frames) == [39, 0, 20, 20, 39]
    audio = V.read_audio(path, sample_rate=16000)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(audio.size - tone.size) < 2048 and np.abs(audio).max() == pytest.approx(
        0.3, abs=0.03
    )
    assert V.read_audio(path, 8000, max_seconds=1.0).size == 8000


def test_silent_video_has_no_audio(tmp_path):
    path = V.write_video(tmp_path / "silent.mp4", _ramp(3), fps=FPS)
    assert not V.probe(path).has_audio
    assert V.read_audio(path) is None
    # fewer frames than F: every frame once, then the last one repeated
    frames = V.read_frames(path, V.sample_indices(3, 6))
    assert _index_of(frames) == [0, 1, 2, 2, 2, 2]


def test_corrupt_missing_and_zero_frame_files_name_the_file(tmp_path):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).bytes(4000))
    for path in (garbage, tmp_path / "missing.mp4"):
        with pytest.raises(DataError, match=path.name):
            V.probe(path)
        with pytest.raises(DataError, match=path.name):
            V.read_frames(path, [0])
    good = V.write_video(tmp_path / "good.mp4", _ramp(20), fps=FPS)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    with pytest.raises(DataError, match="truncated.mp4"):
        V.read_frames(truncated, [0, 10])
    empty = tmp_path / "empty.avi"  # a video stream with a header and no frames
    with av.open(str(empty), "w", format="avi") as out:
        stream = out.add_stream("mpeg4", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        out.start_encoding()
    with pytest.raises(DataError, match="empty.avi.*zero frames"):
        V.probe(empty)
    with pytest.raises(DataError, match="empty.avi"):
        V.read_frames(empty, [0])
    no_video = tmp_path / "no_video.mp4"
    with av.open(str(no_video), "w") as out:
        out.add_stream("aac", rate=16000)
        out.start_encoding()
    with pytest.raises(DataError, match="no_video.mp4.*no video stream"):
        V.probe(no_video)
