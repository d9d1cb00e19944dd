"""The project's name and installed version, for `mlops --version` and the services' version routes."""

from __future__ import annotations

from functools import cache

PACKAGE = "mlops-loop"


@cache
def installed_version() -> str:
    from importlib.metadata import version

    return version(PACKAGE)
