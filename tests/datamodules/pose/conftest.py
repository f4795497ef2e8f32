import pytest


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    """The image scan caches in a per-test folder, not in ~/.cache/tessera."""
    monkeypatch.setenv("TESSERA_CACHE_DIR", str(tmp_path / "cache"))
