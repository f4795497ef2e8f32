"""``benchmarks/separation.py`` names a winner only beyond the seed-to-seed spread."""

import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def verdict(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO))  # benchmarks/ runs from the checkout
    return importlib.import_module("benchmarks.separation").verdict


def test_a_gap_inside_the_seed_spread_is_no_difference(verdict):
    text = verdict({"tiny": [4.0, 5.0, 4.5], "convtasnet_tiny": [4.2, 4.6, 4.4]})
    assert text.startswith("no difference")
    assert "+0.10 dB" in text and "spread 1.00 dB" in text


def test_a_gap_beyond_the_spread_names_the_winner_either_way(verdict):
    assert verdict({"tiny": [6.0, 6.2], "convtasnet_tiny": [4.0, 4.3]}).startswith("tiny ahead")
    text = verdict({"tiny": [3.0, 3.1], "convtasnet_tiny": [4.0, 4.2]})
    assert text.startswith("convtasnet_tiny ahead by 1.05 dB")
