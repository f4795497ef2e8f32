"""Resumable prediction: a datamodule leaves out the items whose outputs already exist."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


class PredictFilterMixin:
    """Mixed into a LightningDataModule so a prediction writer can skip finished items.

    The writer calls :meth:`set_predict_filter` in its ``setup`` hook (Lightning runs the
    datamodule's ``setup`` first, then callbacks', then builds the dataloaders), and the
    datamodule applies :meth:`keep_for_predict` when it builds the predict dataset.
    """

    _predict_filter: Callable[[str], bool] | None = None

    def set_predict_filter(self, keep: Callable[[str], bool] | None) -> None:
        """``keep(item_id)`` is False for items that need no prediction."""
        self._predict_filter = keep

    def keep_for_predict(self, items: Sequence[T], item_id: Callable[[T], str]) -> list[T]:
        if self._predict_filter is None:
            return list(items)
        return [i for i in items if self._predict_filter(item_id(i))]
