"""The package's loggers: silent until the application configures structlog.

The library never configures logging and never prints: a notebook that imports it and
configures nothing sees nothing (the run summary carries every warning). Once
structlog is configured (the CLI does it, ``structlog.testing.capture_logs`` does it),
events go wherever that configuration says.
"""

from __future__ import annotations

from typing import Any

import structlog


def _silent(*args: Any, **kwargs: Any) -> None:
    return None


class _Logger:
    """A structlog logger that does nothing while structlog is unconfigured."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, method: str) -> Any:
        if not structlog.is_configured():
            return _silent
        return getattr(structlog.get_logger(self._name), method)


def get_logger(name: str) -> Any:
    return _Logger(name)
