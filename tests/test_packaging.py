"""The distribution installs as one ``tessera`` namespace, nothing generic at top level."""

import importlib
import subprocess
import sys

import pytest

from helpers.subprocess_env import run_python

SUBPACKAGES = ["kernels", "shared_blocks", "datamodules", "apps", "demos"]


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_subpackage_imports_under_tessera(name):
    module = importlib.import_module(f"tessera.{name}")
    assert module.__file__ is not None


def test_no_generic_top_level_packages(tmp_path):
    # Run from an unrelated folder so the repository root is not on sys.path.
    code = (
        "import importlib.util\n"
        f"names = {SUBPACKAGES!r}\n"
        "print([n for n in names if importlib.util.find_spec(n) is not None])\n"
    )
    result = run_python(code, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_tessera_resolves_from_the_repository_folders(tmp_path):
    result = run_python("import tessera.kernels as k; print(k.__file__)", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("kernels/__init__.py")


def test_console_script_help_lists_commands():
    result = subprocess.run(
        [sys.executable, "-m", "tessera.cli", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "demo" in result.stdout and "tasks:" in result.stdout
