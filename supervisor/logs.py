"""Logging for every process of the tree: one line per event, tagged with the process role.

Owns: the log format (`text` for people, `json` for log shippers) and the role tag
(`supervisor`, `writer`, `decoder-3`) that each process sets once at start. A JSON line has
the fields Google Cloud Logging reads (`severity`, `message`, `time` in RFC 3339, UTC), so
that an error shows up as ERROR rather than DEFAULT there (issue 28), plus `role` and `pid`
(which process of the tree wrote it), `logger`, and `stack_trace` when there is one, the
field Error Reporting reads.

A traceback is part of its event's line: a child's crash is logged once, by the supervisor,
with the traceback the child reported (`CHILD_TRACEBACK`).

Never: log per message at INFO; the supervisor logs a periodic throughput summary instead.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from datetime import UTC, datetime

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
FORMATS = ("text", "json")
# The `extra` key under which the supervisor logs a traceback a child sent in its crash report:
# printed like the record's own exception would be, on the same line.
CHILD_TRACEBACK = "child_traceback"


class TextFormatter(logging.Formatter):
    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record.created))
        line = f"{stamp} {record.levelname:<7} {self.role}[{os.getpid()}] {record.getMessage()}"
        if record.levelno >= logging.ERROR:
            traceback = _traceback(self, record)
            if traceback:
                line += " | " + traceback.rstrip().replace("\n", " | ")
        return line


class JsonFormatter(logging.Formatter):
    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": rfc3339(record.created),
            "severity": record.levelname,  # DEBUG, INFO, WARNING, ERROR, CRITICAL: Cloud's own
            "message": record.getMessage(),
            "role": self.role,
            "pid": os.getpid(),
            "logger": record.name,
        }
        traceback = _traceback(self, record)
        if traceback:
            entry["stack_trace"] = traceback
        return json.dumps(entry)


def rfc3339(created: float) -> str:
    """`2026-12-07T02:14:34.123456Z`: the moment in UTC, to the microsecond."""
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def _traceback(formatter: logging.Formatter, record: logging.LogRecord) -> str:
    """The record's own exception, or the traceback a child reported (`CHILD_TRACEBACK`)."""
    if record.exc_info:
        return formatter.formatException(record.exc_info)
    return getattr(record, CHILD_TRACEBACK, "")


def configure_logging(role: str, level: str = "INFO", fmt: str = "text") -> None:
    """Send this process's log lines to stderr, tagged with `role`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(role) if fmt == "json" else TextFormatter(role))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # gRPC and google-auth are chatty at INFO; their warnings still come through.
    for noisy in ("google", "grpc", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
