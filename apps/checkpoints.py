"""``python -m tessera.apps.checkpoints [TASK ...]``: re-train the shipped demo checkpoints.

Runs each registered app's checkpoint recipe (``AppSpec.checkpoints``) in turn; ``make
checkpoints`` calls this with no arguments, i.e. for every app.
"""

from __future__ import annotations

import argparse

from tessera.apps.registry import get_app, list_apps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tessera.apps.checkpoints")
    parser.add_argument("tasks", nargs="*", help="tasks to re-train (default: all)")
    args = parser.parse_args(argv)
    apps = [get_app(t) for t in args.tasks] if args.tasks else list_apps()
    recipes = [a for a in apps if a.checkpoints]
    if not recipes:
        print("No registered app ships a checkpoint recipe yet; nothing to train.")
        return 0
    for app in recipes:
        print(f"== {app.name}: training its demo checkpoints ==", flush=True)
        module, _, attr = app.checkpoints.partition(":")
        getattr(__import__(module, fromlist=[attr]), attr)()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
