"""``python -m benchmarks run [NAME ...] [--quick]``: run benchmark modules, write results."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from pathlib import Path

from benchmarks.harness import Bench

_NOT_BENCHMARKS = {"harness", "__main__", "gpu"}


def available() -> list[str]:
    here = Path(__file__).parent
    return sorted(
        m.name
        for m in pkgutil.iter_modules([str(here)])
        if m.name not in _NOT_BENCHMARKS
        and hasattr(importlib.import_module(f"benchmarks.{m.name}"), "run")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run benchmarks (all when no name is given)")
    run.add_argument(
        "names", nargs="*", help=f"benchmarks to run; available: {', '.join(available())}"
    )
    run.add_argument("--quick", action="store_true", help="fewer repeats and smaller sizes")
    sub.add_parser("list", help="list the benchmarks")
    sub.add_parser("gpu", help="GPU tests + GPU benchmarks, one report (make gpu-check)")
    args, rest = parser.parse_known_args(argv)
    if args.command == "gpu":
        from benchmarks import gpu

        return gpu.main(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")

    if args.command == "list":
        print("\n".join(available()))
        return 0
    names = args.names or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    for name in names:
        module = importlib.import_module(f"benchmarks.{name}")
        bench = Bench(name, quick=args.quick)
        print(f"== {name} ==", flush=True)
        module.run(bench)
        path = bench.save()
        print(path.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
