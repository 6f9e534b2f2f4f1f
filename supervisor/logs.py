"""Logging for every process of the tree: one line per event, tagged with the process role.

Owns: the log format (`text` for people, `json` for log shippers) and the role tag
(`supervisor`, `writer`, `decoder-3`) that each process sets once at start.

Never: log per message at INFO; the supervisor logs a periodic throughput summary instead.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
FORMATS = ("text", "json")


class _TextFormatter(logging.Formatter):
    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(record.created))
        line = f"{stamp} {record.levelname:<7} {self.role}[{os.getpid()}] {record.getMessage()}"
        if record.exc_info and record.levelno >= logging.ERROR:
            line += " | " + self.formatException(record.exc_info).replace("\n", " | ")
        return line


class _JsonFormatter(logging.Formatter):
    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "role": self.role,
            "pid": os.getpid(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(role: str, level: str = "INFO", fmt: str = "text") -> None:
    """Send this process's log lines to stderr, tagged with `role`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter(role) if fmt == "json" else _TextFormatter(role))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # gRPC and google-auth are chatty at INFO; their warnings still come through.
    for noisy in ("google", "grpc", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
