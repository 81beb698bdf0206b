"""Structured logs: one JSON object per line, with the shop, topic and delivery id when known.

Never log secrets or raw bodies: handlers pass ids through `extra=`, and the formatter copies only
the whitelisted keys below.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

CONTEXT_KEYS = ("shop", "platform", "topic", "delivery_id", "order_id", "status", "duration_ms")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in CONTEXT_KEYS:
            if key in record.__dict__:
                data[key] = record.__dict__[key]
        if record.exc_info:
            data["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return json.dumps(data, default=str)


def init_logging(level: int = logging.INFO) -> None:
    """JSON lines on stderr for the app's own loggers (once; gunicorn keeps its access log)."""
    root = logging.getLogger()
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root.addHandler(handler)
    root.setLevel(level)
