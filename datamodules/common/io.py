"""Atomic file writes: a reader never sees a half-written output.

Data goes to a temporary file in the destination folder, is flushed to disk, and is then
renamed over the destination (``os.replace`` is atomic on POSIX within one file system).
An interrupted run leaves at most a ``.tmp`` file behind, never a truncated output.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path``.

    The temporary name keeps the destination's suffix, so writers that pick a format from
    the extension (soundfile, PIL, torchvision) behave as for the final name.

    Example::

        with atomic_write(out / "mix1.wav") as tmp:
            soundfile.write(tmp, audio, 8000)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o644)  # mkstemp creates 0600; outputs should be readable like any file
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_write(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_write(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_with(path: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp_path)`` and atomically move the result to ``path``."""
    with atomic_write(path) as tmp:
        write(tmp)
    return Path(path)


def cache_dir(name: str) -> Path:
    """``$TESSERA_CACHE_DIR/<name>`` (default ``~/.cache/tessera/<name>``): where data scans
    keep what they read, so a second run over an unchanged dataset is instant."""
    root = os.environ.get("TESSERA_CACHE_DIR") or Path.home() / ".cache" / "tessera"
    return Path(root) / name
