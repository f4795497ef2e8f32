"""The ``tessera`` command.

``tessera <task> <fit|validate|test|predict|...> ...`` forwards everything after the task
name to that app's own CLI; ``tessera demo`` serves the demo hub.
"""

from __future__ import annotations

import argparse
import sys

from tessera.apps.registry import list_apps


def _parser() -> argparse.ArgumentParser:
    apps = list_apps()
    epilog = "tasks:\n" + (
        "\n".join(f"  {a.name:<14}{a.title}: {a.summary}" for a in apps)
        if apps
        else "  (none registered yet)"
    )
    epilog += "\n\nrun `tessera <task> --help` for a task's own commands (fit, predict, ...)."
    parser = argparse.ArgumentParser(
        prog="tessera",
        description="Tessera: attention-based task models.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(
        dest="command", metavar="{demo," + ",".join(a.name for a in apps) + "}"
    )
    demo = sub.add_parser("demo", help="serve the Gradio demo hub (all tasks as tabs)")
    demo.add_argument("--task", default=None, help="serve one task's demo instead of the hub")
    demo.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1)")
    demo.add_argument("--port", type=int, default=7860)
    demo.add_argument(
        "--share",
        type=_parse_bool,
        default=False,
        metavar="{true,false}",
        help="create a public Gradio share link (default: false)",
    )
    for app in apps:
        sub.add_parser(app.name, help=app.summary, add_help=False)
    return parser


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    apps = {a.name: a for a in list_apps()}
    if argv and argv[0] in apps:
        result = apps[argv[0]].cli_main()(argv[1:])
        return result if isinstance(result, int) else 0

    args = _parser().parse_args(argv)
    if args.command == "demo":
        from tessera.demos.hub import build_hub, launch

        launch(build_hub(task=args.task), host=args.host, port=args.port, share=args.share)
        return 0
    _parser().print_help()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
