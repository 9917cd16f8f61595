"""Shared test fixtures: the upstream oracle (copied from shared/fixtures) and the small model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from chromium_support import CHROMIUM_HINT, chromium

FIXTURES = Path(__file__).parent / "fixtures" / "imagebind-reference"
MEDIA = FIXTURES / "media"
SMALL_CONFIG = FIXTURES / "public_config.json"
SMALL_WEIGHTS = FIXTURES / "public.pth"


def pytest_report_header(config) -> str:
    """Whether the page's browser tests can run, said at the top of every run."""
    found = chromium()
    return f"chromium: {found}" if found else f"chromium: NOT FOUND: {CHROMIUM_HINT}"


def pytest_terminal_summary(terminalreporter) -> None:
    """...and again at the end, where a skip is easy to miss."""
    if chromium() is None:
        terminalreporter.write_line(f"NOTE: {CHROMIUM_HINT}; they were skipped", yellow=True, bold=True)


@pytest.fixture(scope="session", autouse=True)
def _private_folders_for_the_session(tmp_path_factory):
    """The module-scoped fixtures (servers, collections, embedders) are set up before any
    test's own folder below: they too get bind's folders of their own, never the user's
    collection file, cache, checkpoints or server socket."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("BIND_DATA_DIR", str(tmp_path_factory.mktemp("bind-data-session")))
        env.setenv("BIND_CACHE_DIR", str(tmp_path_factory.mktemp("bind-cache-session")))
        yield


@pytest.fixture(autouse=True)
def _private_data_dir(tmp_path_factory, monkeypatch):
    """Every test gets its own collection file and embedding cache, never the user's."""
    monkeypatch.setenv("BIND_DATA_DIR", str(tmp_path_factory.mktemp("bind-data")))


@pytest.fixture(params=[(0o022, 0o644), (0o077, 0o600)], ids=["umask022", "umask077"])
def umask(request):
    """Runs the test under each umask; the value is the mode a plain new file gets there."""
    mask, mode = request.param
    old = os.umask(mask)
    yield mode
    os.umask(old)


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def media_dir() -> Path:
    return MEDIA


@pytest.fixture(scope="session")
def small_config_path() -> Path:
    return SMALL_CONFIG


@pytest.fixture(scope="session")
def small_weights_path() -> Path:
    return SMALL_WEIGHTS


@pytest.fixture(scope="session")
def preprocessed() -> dict:
    """Upstream `data.py` outputs for the fixture media (preprocess.npz), by key."""
    return dict(np.load(FIXTURES / "preprocess.npz"))


@pytest.fixture(scope="session")
def reference_texts() -> list[str]:
    return json.loads((FIXTURES / "texts.json").read_text(encoding="utf-8"))
