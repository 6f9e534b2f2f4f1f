"""The settings of one miniscan run, as one frozen, picklable value.

Owns: `PipelineConfig`, built once by the CLI and handed to every child at spawn.

Never: read the environment or flags (the CLI does), or hold live objects.
"""

from __future__ import annotations

from dataclasses import dataclass

from contracts import defaults


@dataclass(frozen=True)
class PipelineConfig:
    project: str = defaults.DEFAULT_PROJECT
    subscription: str = defaults.DEFAULT_SUBSCRIPTION
    db_path: str = defaults.DEFAULT_DB_PATH
    workers: int = 2
    batch_size: int = 1000
    batch_bytes: int = defaults.DEFAULT_BATCH_BYTES  # payload bytes per commit at most
    batch_timeout_s: float = 0.0  # linger for a fuller batch; 0 = group commit only
    load_linger_s: float = 0.010  # the same, only while messages pour in (store.linger)
    max_in_flight: int = 2000  # per decoder: pulled but not yet acked
    max_in_flight_bytes: int = defaults.DEFAULT_MAX_IN_FLIGHT_BYTES  # per decoder
    pull_batch: int = 1000
    lease_s: int = 10
    synchronous: str = "FULL"
    metrics_host: str = "0.0.0.0"
    metrics_port: int = defaults.DEFAULT_METRICS_PORT
    shutdown_timeout_s: float = 30.0
    child_timeout_s: float = 30.0  # no heartbeat for this long: the child is stalled

    @property
    def busy_timeout_ms(self) -> int:
        """How long one commit waits for a lock held by someone else (a replaying admin
        command): well inside the stall timeout, since the writer cannot heartbeat meanwhile."""
        return int(min(5.0, self.child_timeout_s / 4) * 1000)
    startup_timeout_s: float = 60.0
    restart_max: int = 5  # more restarts than this of one child within the window: give up
    restart_window_s: float = 30.0
    log_level: str = "INFO"
    log_format: str = "text"
