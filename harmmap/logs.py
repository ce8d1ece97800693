"""Logging for the service: one JSON object per line (or plain text for a terminal), with request ids.

``serve`` configures it once at process start; the app itself never touches the root logger, so tests
and tools keep their own logging.
"""

from __future__ import annotations

import logging.config
from typing import Any

from harmmap.settings import Settings

JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(message)s"


def logging_config(settings: Settings) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the service and uvicorn's own loggers."""
    formatter: dict[str, Any] = (
        {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": JSON_FIELDS,
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
            "timestamp": False,
        }
        if settings.log_format == "json"
        else {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    )
    level = settings.log_level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stderr"}
        },
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            "uvicorn.access": {"level": "WARNING"},
            "uvicorn.error": {"level": level},
            "uvicorn": {"level": level},
        },
    }


def configure_logging(settings: Settings) -> None:
    """Install the service's logging configuration."""
    logging.config.dictConfig(logging_config(settings))
