"""The logging of ``compatgate serve``: every ``compatgate.*`` logger, uvicorn's and the rest,
on standard error, at the level of ``--log-level`` (else ``[gateway] log_level``).

`logging_config` is a `logging.config.dictConfig` dictionary; uvicorn applies it again in each
worker process of ``--workers N``. Lines are ``time level logger: message``; with
``[gateway] access_log = "json"`` every line is one JSON object (an access-log line is the
access entry itself, other lines ``{"time", "level", "logger", "message"}``), so a log shipper
reads one format. The access log (``compatgate.access``, INFO) shows at ``info`` and
``debug``; uvicorn's own access lines only at ``debug`` (the gateway's are richer, and health
probes would flood them). A host app that mounts a `Gateway` configures logging itself.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

__all__ = ["TEXT_FORMAT", "JSONFormatter", "logging_config"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_ACCESS = "compatgate.access"


class JSONFormatter(logging.Formatter):
    """One JSON object a line; an access-log record's message, already a JSON object, as is."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.name == _ACCESS and message.startswith("{"):
            return message
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def logging_config(level: str, access_log: str = "text") -> dict[str, Any]:
    """The `dictConfig` dictionary for ``level`` (``"info"``, ``"debug"``...) and the
    ``access_log`` format (``"text"``, ``"json"`` or ``"off"``)."""
    level = level.upper()
    if access_log == "json":
        formatter: dict[str, Any] = {"()": "compatgate.logs.JSONFormatter"}
    else:
        formatter = {"format": TEXT_FORMAT}
    handler = {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "formatter": "compatgate"}
    quiet = "WARNING" if level in ("INFO", "DEBUG") else level
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"compatgate": formatter},
        "handlers": {"stderr": handler},
        "root": {"handlers": ["stderr"], "level": quiet},
        "loggers": {
            "compatgate": {"handlers": ["stderr"], "level": level, "propagate": False},
            _ACCESS: {"level": "INFO" if access_log != "off" and level in ("INFO", "DEBUG") else "WARNING"},
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"handlers": ["stderr"], "level": level if level == "DEBUG" else "WARNING",
                               "propagate": False},
        },
    }
