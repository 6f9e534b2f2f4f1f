"""What every store connection is opened with, whichever the backend: written once.

Owns: `BUSY_TIMEOUT_MS`, the default wait for a lock another connection holds (SQLite's busy
timeout, PostgreSQL's `lock_timeout`), and `SYNCHRONOUS_MODES` with `synchronous_mode`, the
one check of the durability a writer is asked for (SQLite's `PRAGMA synchronous` names;
PostgreSQL maps them onto `synchronous_commit`).

Never: open connections or apply a setting; each backend's connection does.
"""

from __future__ import annotations

BUSY_TIMEOUT_MS = 5000
SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")


def synchronous_mode(requested: str) -> str:
    """The mode in upper case; ValueError for a name that is not one of SYNCHRONOUS_MODES."""
    mode = requested.upper()
    if mode not in SYNCHRONOUS_MODES:
        raise ValueError(f"synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}")
    return mode
