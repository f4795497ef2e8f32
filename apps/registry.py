"""Registry of task apps.

An app makes itself known by shipping ``tessera/apps/<task>/spec.py`` with a module-level
``APP = AppSpec(...)``. Specs are plain data and their modules import nothing heavy, so
``tessera --help`` and the demo hub can list every app without importing torch models.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any


@dataclass(frozen=True)
class AppSpec:
    """What the umbrella CLI and the demo hub need to know about one app.

    Args:
        name: task name used on the command line (``tessera <name> ...``).
        title: human title shown in ``--help`` and as the hub tab label.
        summary: one line on what the app does.
        cli: ``"module:function"`` taking an argv list (the app's LightningCLI entry).
        demo: ``"module:function"`` returning a ``gr.Blocks`` (called with no arguments).
        checkpoints: ``"module:function"`` that re-trains the app's shipped demo checkpoints
            (run by ``make checkpoints``).
    """

    name: str
    title: str
    summary: str
    cli: str
    demo: str | None = None
    checkpoints: str | None = None

    def cli_main(self) -> Callable[[list[str]], Any]:
        return _resolve(self.cli)

    def demo_builder(self) -> Callable[[], Any] | None:
        return _resolve(self.demo) if self.demo else None


def _resolve(target: str) -> Callable:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


@cache
def _discover() -> dict[str, AppSpec]:
    import tessera.apps as apps_pkg

    found: dict[str, AppSpec] = {}
    for info in sorted(pkgutil.iter_modules(apps_pkg.__path__), key=lambda i: i.name):
        if not info.ispkg:
            continue
        try:
            spec_module = importlib.import_module(f"tessera.apps.{info.name}.spec")
        except ModuleNotFoundError as err:
            if err.name == f"tessera.apps.{info.name}.spec":
                continue  # a helper package such as apps/common, not an app
            raise
        spec = spec_module.APP
        if spec.name in found:
            raise RuntimeError(f"two apps register the task name {spec.name!r}")
        found[spec.name] = spec
    return found


def list_apps() -> list[AppSpec]:
    """All registered apps, sorted by name."""
    return list(_discover().values())


def get_app(name: str) -> AppSpec:
    """The app registered under ``name``; raises ``KeyError`` naming the known tasks."""
    apps = _discover()
    if name not in apps:
        known = ", ".join(apps) or "none yet"
        raise KeyError(f"no app named {name!r} (registered: {known})")
    return apps[name]
