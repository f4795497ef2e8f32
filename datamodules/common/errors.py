"""Errors on user data, and the ``on_error: raise | skip`` policy.

Readers raise :class:`DataError`, which names the file, what is wrong and how to fix it.
With ``on_error="skip"`` a dataset returns a :class:`SkippedItem` in place of the sample;
:func:`collate_skipping` removes those from the batch and reports them under
``batch["skipped"]``, so prediction writers can list every skipped item with its reason
instead of dropping it silently.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from torch.utils.data import default_collate

OnError = Literal["raise", "skip"]


class DataError(ValueError):
    """A user file that cannot be used: names the file, the problem and the fix."""

    def __init__(self, path: str | Path, problem: str, fix: str | None = None):
        self.path = str(path)
        self.problem = problem
        self.fix = fix
        message = f"{self.path}: {problem}"
        if fix:
            message += f" ({fix})"
        super().__init__(message)


@dataclass(frozen=True)
class SkippedItem:
    """Stands in for a sample that could not be read under ``on_error="skip"``."""

    item_id: str
    path: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"item_id": self.item_id, "path": self.path, "reason": self.reason}


def load_item(item_id: str, path: str | Path, load: Callable[[], Any], on_error: OnError) -> Any:
    """Run ``load()``; on a :class:`DataError` raise or return a :class:`SkippedItem`."""
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    try:
        return load()
    except DataError as err:
        if on_error == "raise":
            raise
        return SkippedItem(item_id, err.path, str(err))


def collate_skipping(collate: Callable[[list], Any] = default_collate):
    """Wrap ``collate`` so skipped items leave the batch and are listed in ``batch["skipped"]``.

    Batches must be dicts. A batch whose items were all skipped collates to
    ``{"skipped": [...]}`` alone; ``is_empty_batch`` tells a step to do nothing with it.
    """

    def _collate(items: Sequence[Any]) -> dict:
        kept = [i for i in items if not isinstance(i, SkippedItem)]
        skipped = [i.as_dict() for i in items if isinstance(i, SkippedItem)]
        batch = collate(kept) if kept else {}
        if not isinstance(batch, dict):
            raise TypeError("collate_skipping needs samples that collate to a dict")
        batch["skipped"] = skipped
        return batch

    return _collate


def is_empty_batch(batch: dict) -> bool:
    """True when every item of the batch was skipped."""
    return set(batch) <= {"skipped"}
