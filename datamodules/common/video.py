"""Video decoding with PyAV: probing, interval frame sampling, seeking reads, audio tracks.

Frames are read by index without decoding the whole file: the reader seeks to the keyframe
before a far-away target and decodes forward from there (``av.container.seek``), and walks
forward without seeking when the next target is close. Frame indices follow the container's
presentation timestamps, so variable-frame-rate files map to the nearest frame.

Sampling follows X-Pool (``layer6ai-labs/xpool``, ``datasets/video_capture.py``): the clip is
split into ``count`` equal intervals, the middle frame of each is taken for evaluation and a
random frame of each for training; a clip with fewer frames than ``count`` repeats its last
frame.

Every unreadable file (missing, not a video, no video stream, zero frames) raises
:class:`~tessera.datamodules.common.DataError` naming the file and the fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import numpy as np

from tessera.datamodules.common.errors import DataError
from tessera.datamodules.common.io import atomic_write

SampleMode = Literal["middle", "random"]
_REENCODE = "re-encode it (e.g. `ffmpeg -i IN -c:v libx264 OUT.mp4`) or drop it from the split"


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe` reads from a container's header (and packets when needed)."""

    path: str
    num_frames: int
    fps: float
    duration: float  # seconds
    width: int
    height: int
    has_audio: bool
    audio_sample_rate: int | None


def _open(path: str | Path) -> av.container.InputContainer:
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "video file does not exist", "check the dataset folder and ids")
    try:
        return av.open(str(path), mode="r")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as err:
        raise DataError(path, f"cannot be opened as a video ({err})", _REENCODE) from err


def _video_stream(container, path) -> av.video.stream.VideoStream:
    if not container.streams.video:
        raise DataError(path, "has no video stream", _REENCODE)
    return container.streams.video[0]


def _fps(stream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


def probe(path: str | Path) -> VideoInfo:
    """Frame count, frame rate, duration, size and audio presence of a video file.

    The frame count comes from the container header; when the header has none (some
    Matroska/WebM/AVI files) the video packets are counted, which reads but does not decode.

    Raises:
        DataError: the file is missing, unreadable, has no video stream or no frames.
    """
    container = _open(path)
    try:
        stream = _video_stream(container, path)
        fps = _fps(stream)
        num_frames = int(stream.frames or 0)
        if num_frames <= 0:
            try:
                num_frames = sum(1 for p in container.demux(stream) if p.size > 0)
            except av.FFmpegError as err:
                raise DataError(path, f"video packets cannot be read ({err})", _REENCODE) from err
        if num_frames <= 0:
            raise DataError(path, "has a video stream with zero frames", _REENCODE)
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base
        else:
            duration = num_frames / fps if fps else 0.0
        if fps <= 0 and duration > 0:
            fps = num_frames / duration
        audio = container.streams.audio
        return VideoInfo(
            path=str(path),
            num_frames=num_frames,
            fps=fps,
            duration=duration,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            has_audio=bool(audio),
            audio_sample_rate=audio[0].codec_context.sample_rate if audio else None,
        )
    finally:
        container.close()


def sample_indices(
    num_frames: int,
    count: int,
    mode: SampleMode = "middle",
    rng: np.random.Generator | None = None,
) -> list[int]:
    """``count`` frame indices: one per equal interval of ``[0, num_frames)``.

    Args:
        num_frames: frames in the clip (>= 1).
        count: F, frames to sample.
        mode: ``"middle"`` (the middle frame of each interval, for evaluation) or
            ``"random"`` (a uniformly random frame of each interval, for training).
        rng: generator for ``"random"`` (default: a fresh unseeded one).

    Returns:
        ``count`` non-decreasing indices; with fewer than ``count`` frames every frame is
        taken once and the last one is repeated to fill up.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    if mode not in ("middle", "random"):
        raise ValueError(f"mode must be 'middle' or 'random', got {mode!r}")
    taken = min(num_frames, count)
    edges = np.linspace(0, num_frames, taken + 1).astype(int)
    starts, ends = edges[:-1], np.maximum(edges[1:] - 1, edges[:-1])  # inclusive intervals
    if mode == "middle":
        indices = (starts + ends) // 2
    else:
        rng = rng if rng is not None else np.random.default_rng()
        indices = rng.integers(starts, ends + 1)
    indices = [int(i) for i in indices]
    return indices + [indices[-1]] * (count - taken)


def _frame_index(frame, start_time: float, fps: float) -> int | None:
    if frame.time is None:
        return None
    return int(round((frame.time - start_time) * fps))


def read_frames(
    path: str | Path,
    indices: Sequence[int],
    short_side: int | None = None,
    seek_gap: int | None = None,
) -> np.ndarray:
    """Decode the frames at ``indices`` (any order, repeats allowed) as RGB.

    Args:
        path: video file.
        indices: 0-based frame indices (from :func:`sample_indices`). Indices past the last
            decodable frame get the last frame (headers sometimes over-count by a frame or
            two), as the X-Pool reader pads.
        short_side: resize (bilinear, in the decoder) so the shorter side has this length.
        seek_gap: seek instead of decoding forward when the next target is more than this
            many frames ahead (default: 2 seconds of frames, at least 32).

    Returns:
        uint8 ``(len(indices), H, W, 3)``.

    Raises:
        DataError: unreadable file, no video stream, or not a single decodable frame.
    """
    if len(indices) == 0:
        raise ValueError("indices is empty")
    if min(indices) < 0:
        raise ValueError(f"frame indices must be >= 0, got {min(indices)}")
    container = _open(path)
    try:
        stream = _video_stream(container, path)
        try:
            found = _decode_targets(container, stream, sorted(set(indices)), short_side, seek_gap)
        except (av.FFmpegError, ValueError) as err:
            raise DataError(path, f"video frames cannot be decoded ({err})", _REENCODE) from err
        if not found:
            found = {-1: _last_frame(container, stream, path, short_side)}
        filler = found[max(found)]  # targets past the end of the stream
        return np.stack([found.get(int(i), filler) for i in indices])
    finally:
        container.close()


def _decode_targets(container, stream, targets, short_side, seek_gap) -> dict[int, np.ndarray]:
    """Frames at the sorted ``targets``, seeking over long gaps; stops at the stream's end."""
    fps = _fps(stream) or 25.0
    time_base = stream.time_base or Fraction(1, 1)
    start_time = float(stream.start_time * time_base) if stream.start_time else 0.0
    gap = seek_gap if seek_gap is not None else max(32, int(2 * fps))
    found: dict[int, np.ndarray] = {}
    decoder, position, current = None, -1, None  # position: index of the last decoded frame
    for target in targets:
        if current is not None and position >= target:  # a frame-rate jump skipped it
            found[target] = current
            continue
        if decoder is None or target - position > gap:
            if target > gap:
                pts = int((target / fps + start_time) / time_base)
                container.seek(max(pts, 0), stream=stream, backward=True, any_frame=False)
            elif decoder is not None:
                container.seek(0, stream=stream, backward=True, any_frame=False)
            decoder, position = container.decode(stream), -1
        frame = None
        for frame in decoder:
            if frame.time is None:  # no timestamps: only a sequential decode knows positions
                return _decode_sequential(container, stream, targets, short_side)
            position = int(round((frame.time - start_time) * fps))
            if position >= target:
                current = found[target] = _to_rgb(frame, short_side)
                break
        else:  # end of stream: this and later targets get its last frame
            if frame is not None:
                found[target] = _to_rgb(frame, short_side)
            break
    return found


def _decode_sequential(container, stream, targets, short_side) -> dict[int, np.ndarray]:
    container.seek(0, stream=stream, backward=True, any_frame=False)
    wanted, found = set(targets), {}
    for position, frame in enumerate(container.decode(stream)):
        if position in wanted:
            found[position] = _to_rgb(frame, short_side)
        if position >= targets[-1]:
            break
    return found


def _last_frame(container, stream, path, short_side) -> np.ndarray:
    """The final decodable frame (targets were all past the end of the stream)."""
    last = None
    try:
        container.seek(0, stream=stream, backward=True, any_frame=False)
        for frame in container.decode(stream):
            last = frame
    except av.FFmpegError as err:
        raise DataError(path, f"video frames cannot be decoded ({err})", _REENCODE) from err
    if last is None:
        raise DataError(path, "has no decodable video frames", _REENCODE)
    return _to_rgb(last, short_side)


def _to_rgb(frame, short_side: int | None) -> np.ndarray:
    if short_side is None:
        return frame.to_ndarray(format="rgb24")
    w, h = frame.width, frame.height
    scale = short_side / min(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return frame.reformat(width=size[0], height=size[1], format="rgb24").to_ndarray()


def read_audio(
    path: str | Path, sample_rate: int = 16000, max_seconds: float | None = None
) -> np.ndarray | None:
    """The first audio track as mono float32 ``(T,)`` at ``sample_rate``, or None without one.

    Args:
        path: video (or audio) file.
        sample_rate: output rate (the track is resampled by FFmpeg's swresample).
        max_seconds: stop after this much audio (None = whole track).

    Raises:
        DataError: unreadable file or undecodable audio packets.
    """
    container = _open(path)
    try:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        limit = None if max_seconds is None else int(max_seconds * sample_rate)
        chunks, total = [], 0
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
                    total += chunks[-1].size
                if limit is not None and total >= limit:
                    break
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except av.FFmpegError as err:
            raise DataError(path, f"audio track cannot be decoded ({err})", _REENCODE) from err
        if not chunks:
            return None
        audio = np.concatenate(chunks).astype(np.float32, copy=False)
        return audio[:limit] if limit is not None else audio
    finally:
        container.close()


def write_video(
    path: str | Path,
    frames: np.ndarray,
    fps: int = 10,
    audio: np.ndarray | None = None,
    sample_rate: int = 16000,
    codec: str | None = None,
) -> Path:
    """Encode uint8 ``(F, H, W, 3)`` frames (even H, W) and optional mono float audio ``(T,)``.

    The container follows the suffix (``.mp4``: H.264 + AAC, ``.avi``: MPEG-4 part 2 +
    16-bit PCM), written atomically. Used by synthetic worlds, fixtures and demo examples.
    """
    path = Path(path)
    frames = np.asarray(frames, dtype=np.uint8)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (F, H, W, 3) uint8, got {frames.shape}")
    vcodec = codec or ("mpeg4" if path.suffix.lower() == ".avi" else "libx264")
    with atomic_write(path) as tmp, av.open(str(tmp), mode="w", format=_format_for(path)) as out:
        video = out.add_stream(vcodec, rate=fps)
        video.width, video.height = frames.shape[2], frames.shape[1]
        video.pix_fmt = "yuv420p"
        if vcodec == "libx264":
            video.options = {"preset": "ultrafast", "g": str(max(1, fps))}
        else:
            video.bit_rate = 4_000_000
        sound = None
        if audio is not None:
            acodec = "aac" if path.suffix.lower() != ".avi" else "pcm_s16le"
            sound = out.add_stream(acodec, rate=sample_rate, layout="mono")
        for image in frames:
            for packet in video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        if sound is not None:
            _encode_audio(out, sound, np.asarray(audio, dtype=np.float32), sample_rate)
    return path


def _format_for(path: Path) -> str:
    return {".avi": "avi", ".mkv": "matroska", ".webm": "webm"}.get(path.suffix.lower(), "mp4")


def _encode_audio(out, stream, audio: np.ndarray, sample_rate: int) -> None:
    chunk = stream.codec_context.frame_size or 1024
    pcm16 = stream.codec_context.name.startswith("pcm_s16")
    resampler = av.AudioResampler(format=stream.codec_context.format.name, layout="mono")
    pts = 0
    for start in range(0, audio.size, chunk):
        piece = audio[start : start + chunk][None]
        if pcm16:
            frame = av.AudioFrame.from_ndarray(
                (np.clip(piece, -1, 1) * 32767).astype(np.int16), format="s16", layout="mono"
            )
        else:
            frame = av.AudioFrame.from_ndarray(piece, format="flt", layout="mono")
        frame.sample_rate, frame.pts = sample_rate, pts
        pts += piece.shape[1]
        for converted in resampler.resample(frame):
            for packet in stream.encode(converted):
                out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)
