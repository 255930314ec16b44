"""Fixtures for the yieldio.testing tests.

``pytester`` (pytest's fixture for running pytest inside a test) is loaded
here, in ``pytest_configure``: a ``pytest_plugins = ["pytester"]`` line is
refused by pytest in a conftest below the root directory.
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin("pytester"):
        config.pluginmanager.import_plugin("pytester")
