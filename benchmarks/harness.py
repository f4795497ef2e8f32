"""Times callables side by side and writes result tables.

A benchmark module in this folder defines ``run(bench: Bench) -> None`` and calls
``bench.compare(...)`` once per row of its table. Every case of a row is measured in the
same process, one after another, so ratios to the row's baseline are like for like.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

RESULTS_DIR = Path(__file__).parent / "results"


def machine_info() -> dict:
    """Facts about this machine that a reader needs to interpret the numbers."""
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _release_free_memory() -> None:
    gc.collect()
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class _PeakRSS:
    """Samples the resident set size in a thread; CPU allocations are not otherwise tracked.

    Reports the peak increase over the RSS at entry. Sampling every 0.5 ms can miss very
    short peaks, so small numbers are a lower bound; large buffers (the ones that matter)
    live long enough to be seen.
    """

    def __enter__(self):
        _release_free_memory()
        self.base = self.peak = _rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            time.sleep(0.0005)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())

    @property
    def increase(self) -> int:
        return self.peak - self.base


def _sync(device: str | None) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


@dataclass
class CaseResult:
    name: str
    median_s: float | None
    min_s: float | None
    max_s: float | None
    peak_mem_mb: float | None
    ratio_to_baseline: float | None = None
    extra: dict = field(default_factory=dict)
    error: str | None = None


@dataclass
class Row:
    params: dict
    baseline: str
    cases: list[CaseResult]


class Bench:
    """Collects rows for one benchmark and writes ``results/<name>.{json,md}``."""

    def __init__(self, name: str, *, warmup: int = 2, repeats: int = 7, quick: bool = False):
        self.name = name
        self.warmup = 1 if quick else warmup
        self.repeats = 3 if quick else repeats
        self.quick = quick
        self.rows: list[Row] = []
        self.notes: list[str] = []

    def measure(
        self, fn: Callable[[], object], *, device: str | None = None, memory: bool = True
    ) -> tuple[list[float], float | None]:
        """Warm up, then time ``repeats`` calls; return the times and peak memory (MB)."""
        for _ in range(self.warmup):
            fn()
        _sync(device)
        peak_mb = None
        if memory:
            if device == "cuda":
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
                fn()
                _sync(device)
                peak_mb = (torch.cuda.max_memory_allocated() - base) / 2**20
            else:
                with _PeakRSS() as rss:
                    fn()
                peak_mb = rss.increase / 2**20
        times = []
        for _ in range(self.repeats):
            start = time.perf_counter()
            fn()
            _sync(device)
            times.append(time.perf_counter() - start)
        return times, peak_mb

    def compare(
        self,
        params: dict,
        cases: dict[str, Callable[[], object]],
        *,
        baseline: str,
        device: str | None = None,
        flops: float | dict[str, float] | None = None,
        memory: bool = True,
    ) -> Row:
        """Measure every case of one row; ratio = case median / baseline median.

        A case that raises (e.g. out of memory at a large size) is recorded with its error
        instead of stopping the benchmark. With ``flops`` (one count for every case, or a
        ``{case name: count}`` dict when the cases do different work) the achieved GFLOP/s
        is recorded.
        """
        results = []
        for case_name, fn in cases.items():
            try:
                times, peak = self.measure(fn, device=device, memory=memory)
            except Exception as err:  # a row reports failures, it does not abort the run
                results.append(CaseResult(case_name, None, None, None, None, error=repr(err)))
                continue
            work = flops.get(case_name) if isinstance(flops, dict) else flops
            extra = {"gflops": work / statistics.median(times) / 1e9} if work else {}
            results.append(
                CaseResult(
                    case_name,
                    statistics.median(times),
                    min(times),
                    max(times),
                    peak,
                    extra=extra,
                )
            )
        base = next((r for r in results if r.name == baseline and r.median_s), None)
        for r in results:
            if base and r.median_s:
                r.ratio_to_baseline = r.median_s / base.median_s
        row = Row(params, baseline, results)
        self.rows.append(row)
        print(self._format_row(row), flush=True)
        return row

    def note(self, text: str) -> None:
        self.notes.append(text)

    @staticmethod
    def _format_row(row: Row) -> str:
        head = ", ".join(f"{k}={v}" for k, v in row.params.items())
        parts = []
        for r in row.cases:
            if r.error:
                parts.append(f"{r.name}: failed ({r.error[:60]})")
            else:
                ratio = f" x{r.ratio_to_baseline:.2f}" if r.ratio_to_baseline else ""
                parts.append(f"{r.name}: {r.median_s * 1e3:.2f} ms{ratio}")
        return f"[{head}] " + " | ".join(parts)

    def markdown(self) -> str:
        lines = [f"# {self.name}", "", "Machine: " + json.dumps(machine_info()), ""]
        lines += [f"- {n}" for n in self.notes]
        if self.notes:
            lines.append("")
        lines.append(
            "| params | case | median ms | min ms | max ms | ratio to baseline | peak MB | extra |"
        )
        lines.append("|---|---|---|---|---|---|---|---|")
        for row in self.rows:
            params = ", ".join(f"{k}={v}" for k, v in row.params.items())
            for r in row.cases:
                if r.error:
                    lines.append(f"| {params} | {r.name} | failed: {r.error[:80]} | | | | | |")
                    continue
                ratio = f"{r.ratio_to_baseline:.2f}" if r.ratio_to_baseline else ""
                base_mark = " (baseline)" if r.name == row.baseline else ""
                peak = f"{r.peak_mem_mb:.1f}" if r.peak_mem_mb is not None else ""
                extra = ", ".join(f"{k}={v:.3g}" for k, v in r.extra.items())
                lines.append(
                    f"| {params} | {r.name}{base_mark} | {r.median_s * 1e3:.3f} | "
                    f"{r.min_s * 1e3:.3f} | {r.max_s * 1e3:.3f} | {ratio} | {peak} | {extra} |"
                )
        return "\n".join(lines) + "\n"

    def save(self, results_dir: Path = RESULTS_DIR) -> Path:
        results_dir.mkdir(parents=True, exist_ok=True)
        payload = {
            "name": self.name,
            "machine": machine_info(),
            "warmup": self.warmup,
            "repeats": self.repeats,
            "notes": self.notes,
            "rows": [asdict(r) for r in self.rows],
        }
        (results_dir / f"{self.name}.json").write_text(json.dumps(payload, indent=2) + "\n")
        md_path = results_dir / f"{self.name}.md"
        md_path.write_text(self.markdown())
        return md_path
