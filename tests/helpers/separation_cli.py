"""Command-line pieces shared by the separation app tests."""

import csv
from pathlib import Path

import yaml

import tessera.apps.separation

CONFIGS = Path(tessera.apps.separation.__file__).parent / "configs"


def tiny_model_config() -> dict:
    return yaml.safe_load((CONFIGS / "tiny.yaml").read_text())["model"]


def csv_rows(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


TINY = [
    "-c", "apps/separation/configs/tiny.yaml", "--trainer.enable_progress_bar", "false",
    "--trainer.logger", "false", "--trainer.limit_val_batches", "1",
    "--trainer.val_check_interval", "1",
]  # fmt: skip
