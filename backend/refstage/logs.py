"""Structured logs: one JSON object per line, so a log pipeline can filter by tenant, job or event."""

from __future__ import annotations

import json
import logging
import re
import sys
import time

# A Salesforce connection's push key travels in its Outbound Message URL path: never write it to a log.
_PUSH_KEY_IN_PATH = re.compile(r"(/webhooks/salesforce/outbound-message/[^/\s?\"']+/)[^/\s?\"']+")


def redact_push_keys(text: str) -> str:
    """`.../outbound-message/<connection>/<key>` → `.../outbound-message/<connection>/[redacted]`."""
    return _PUSH_KEY_IN_PATH.sub(r"\1[redacted]", text) if "outbound-message/" in text else text


_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact_push_keys(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


def configure_logging(level: str = "INFO", json_output: bool = True) -> None:
    root = logging.getLogger()
    if getattr(root, "_refstage_configured", False):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_output else logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.handlers[:] = [handler]
    root.setLevel(level)
    root._refstage_configured = True  # type: ignore[attr-defined]
