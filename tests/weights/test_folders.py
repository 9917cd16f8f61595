"""Where bind keeps its data and its cache: the BIND_* variable, else XDG, else home."""

from __future__ import annotations

import pytest

from bindcli._util import folders


@pytest.fixture
def home(monkeypatch, tmp_path):
    for var in ("BIND_DATA_DIR", "XDG_DATA_HOME", "BIND_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_data_follows_bind_data_dir_then_xdg_then_home(monkeypatch, tmp_path, home):
    assert folders.default_db_path() == home / ".local/share/bind/bind.sqlite3"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert folders.default_db_path() == tmp_path / "xdg" / "bind" / "bind.sqlite3"
    monkeypatch.setenv("BIND_DATA_DIR", str(tmp_path / "bd"))
    assert folders.data_dir() == tmp_path / "bd"
    assert folders.default_db_path() == tmp_path / "bd" / "bind.sqlite3"


def test_cache_follows_bind_cache_dir_then_xdg_then_home(monkeypatch, tmp_path, home):
    assert folders.cache_dir() == home / ".cache" / "bind"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert folders.cache_dir() == tmp_path / "xdg" / "bind"
    monkeypatch.setenv("BIND_CACHE_DIR", "~/mine")
    assert folders.cache_dir() == home / "mine"
