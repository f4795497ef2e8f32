"""Runs Python code in a fresh interpreter with a chosen kernel backend."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_python(
    code: str,
    *,
    triton_interpret: bool = False,
    backend: str | None = None,
    cwd: Path | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess:
    """Run ``code`` in a new process; environment flags are set before anything is imported.

    Use this when a test must control import-time state (``TRITON_INTERPRET`` is read when
    kernels are decorated) independently of the pytest process.
    """
    env = dict(os.environ)
    if triton_interpret:
        env["TRITON_INTERPRET"] = "1"
    else:
        env.pop("TRITON_INTERPRET", None)
    if backend:
        env["TESSERA_KERNELS"] = backend
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
    )
