"""The settings of the writer process, as one frozen, picklable value.

Owns: `WriterSettings`, each field with its one default and, where the command line sets it,
its flag (`contracts.flags`): which database, how durable a commit is, and how large and how
late a batch may grow (`store.linger`).

Never: read the environment or flags (`supervisor.cli` does), or hold live objects.
"""

from __future__ import annotations

from dataclasses import dataclass

from contracts import defaults
from contracts.flags import Flag, setting
from store.connection_options import BUSY_TIMEOUT_MS


@dataclass(frozen=True)
class WriterSettings:
    db_path: str = setting(defaults.DEFAULT_DB_PATH, Flag(
        "--db",
        "SQLite file (in an existing folder, the default data/ aside; one supervisor per "
        "file) or postgresql:// URL (tables created in its default schema; any number of "
        "supervisors may share it).",
        # Named outright: every command (and the README) reads MINISCAN_DB.
        envvars=(defaults.DB_PATH_ENV,), path=True,
    ))  # fmt: skip
    synchronous: str = setting("FULL", Flag(
        "--synchronous",
        "Commit durability: SQLite's synchronous pragma; on PostgreSQL FULL keeps "
        "synchronous_commit on and NORMAL turns it off. NORMAL may lose the last commits on "
        "power loss (a server crash on PostgreSQL), which were already acked: only for "
        "throwaway data.",
        choices=("FULL", "NORMAL"), upper=True,
    ))  # fmt: skip
    batch_size: int = setting(1000, Flag(
        "--batch-size", "Messages per commit at most.", low=1, high=100_000,
    ))  # fmt: skip
    batch_bytes: int = setting(defaults.DEFAULT_BATCH_BYTES, Flag(
        "--batch-bytes", "Payload bytes per commit at most.", low=64 * 1024, high=2**31,
    ))  # fmt: skip
    batch_timeout_s: float = setting(0.0, Flag(
        "--batch-timeout",
        "Milliseconds a message may linger for more to join its batch while the writer is "
        "idle. 0: group commit, the writer commits as soon as nothing more is waiting, and "
        "what arrives during a commit forms the next batch (at high rates --load-linger "
        "applies).",
        low=0, high=60_000, per=1000,
    ))  # fmt: skip
    load_linger_s: float = setting(0.010, Flag(
        "--load-linger",
        "Milliseconds a batch may wait to grow while messages pour in (at least 100 expected "
        "in that time: 10,000 msgs/s at 10 ms); fewer, larger commits cost less CPU a "
        "message. At lower rates the writer commits as soon as its pipe is idle. 0: never.",
        low=0, high=60_000, per=1000,
    ))  # fmt: skip
    # How long one commit waits for a lock held by someone else (a replaying admin command).
    # Under a supervisor it is derived from the stall timeout (`supervisor.settings`).
    busy_timeout_ms: int = BUSY_TIMEOUT_MS
