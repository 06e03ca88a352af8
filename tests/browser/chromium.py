"""Whether the browser tier can run: Playwright for Python and the system Chromium.

Browser downloads are not available here, so Playwright drives the Debian package's binary. On a
developer machine without either, the tier skips with a one-line reason; under ``CI=true`` (set
by ``.ci/run``, which installs Chromium) a missing piece is a failure, never a silent skip.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from tests.support.services import in_ci

EXECUTABLE = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def missing() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "Playwright for Python is not installed (pip install -e '.[dev]')"
    if not os.access(EXECUTABLE, os.X_OK):
        return f"no Chromium at {EXECUTABLE} (apt-get install chromium)"
    return None


def require() -> None:
    """Skip the calling test module, or fail it under CI, when the browser cannot run."""
    reason = missing()
    if reason is None:
        return
    if in_ci():
        pytest.fail(f"browser tests cannot run under CI: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)
