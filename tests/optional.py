"""Optional extras in tests: skipped with a reason where the extra is not installed, a
failure where it must be (``RSFUSE_REQUIRE_EXTRAS=1``, which ``.ci/run`` sets: CI installs
every extra the README's install line names, so a test there never skips into green)."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest


def optional_import(module: str, extra: str) -> ModuleType:
    """``module``, or a skip naming ``extra`` (a failure under ``RSFUSE_REQUIRE_EXTRAS=1``)."""
    reason = f"{module} comes with the optional [{extra}] extra"
    if os.environ.get("RSFUSE_REQUIRE_EXTRAS") == "1":
        try:
            return importlib.import_module(module)
        except ImportError as e:
            pytest.fail(f"{reason}, which this run requires: {e}")
    return pytest.importorskip(module, reason=reason)
