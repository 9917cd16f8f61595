"""Where the distribution's Chromium is, for the page's browser tests (and the line every test
run shows about it); no import of bind, so that conftest can ask early."""

from __future__ import annotations

import os
import shutil

#: how to get the browser, said where it is missing (Debian's package; CI installs it)
CHROMIUM_HINT = ("the page's browser tests need Chromium: apt-get install chromium "
                 "(or set BIND_CHROMIUM to a Chrome or Chromium executable)")


def chromium() -> str | None:
    """The Chromium to drive: $BIND_CHROMIUM, else the distribution's on the PATH."""
    given = os.environ.get("BIND_CHROMIUM")
    if given:
        return given if os.access(given, os.X_OK) else None
    return next((found for name in ("chromium", "chromium-browser", "google-chrome")
                 if (found := shutil.which(name))), None)
