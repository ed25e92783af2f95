"""Logging for the server and its workers: one format, a level, an optional file.

The same dictConfig is handed to uvicorn, which applies it in every worker
process. Request lines (``opengroup.requests``, level info) carry transport,
method, route pattern, status and time: never the raw path, query, body or
token.
"""

from __future__ import annotations

from typing import Any

from opengroup.config import Settings

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_config(settings: Settings) -> dict[str, Any]:
    handlers: dict[str, Any] = {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "stream": "ext://sys.stderr",
        }
    }
    if settings.log_file:
        handlers["file"] = {
            "class": "logging.handlers.WatchedFileHandler",
            "formatter": "plain",
            "filename": settings.log_file,
        }
    level = settings.log_level.upper()
    names = list(handlers)
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": FORMAT}},
        "handlers": handlers,
        "root": {"handlers": names, "level": level},
        "loggers": {
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": True},
            "alembic": {"handlers": [], "level": "WARNING", "propagate": True},
            # Never below WARNING, even at log level debug: SQL logging shows parameters
            # (message data, token hashes).
            "sqlalchemy": {"handlers": [], "level": "WARNING", "propagate": True},
        },
    }
