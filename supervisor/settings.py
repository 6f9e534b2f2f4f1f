"""The settings of one miniscan run, as one frozen, picklable value.

Owns: `SupervisorSettings`: the supervisor's own fields (how many decoders, the metrics
server, stop, stall and restart limits, logging), each with its one default and its flag
(`contracts.flags`), and the whole settings of each role (`decoder`, `writer`), which the
supervisor hands to every child at spawn. Also the one setting derived across roles: the
writer's lock wait, from the stall timeout.

Never: read the environment or flags (`supervisor.cli` does), or hold live objects.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from contracts import defaults
from contracts.flags import Flag, setting
from store.connection_options import BUSY_TIMEOUT_MS
from store.writer_settings import WriterSettings
from supervisor.cgroup_limits import CGROUP_ROOT
from supervisor.cpu_busy import usable_cpus
from supervisor.logs import FORMATS, LEVELS
from workers.decoder_settings import DecoderSettings


@dataclass(frozen=True)
class SupervisorSettings:
    decoder: DecoderSettings = dataclasses.field(default_factory=DecoderSettings)
    writer: WriterSettings = dataclasses.field(default_factory=WriterSettings)
    # One decoder per CPU the cgroup's quota allows (issue 27), read where cgroups usually
    # are mounted, whatever --cgroup-root says.
    workers: int = setting(default_factory=usable_cpus, flag=Flag(
        "--workers", "Decoder processes.", low=1, high=256,
        show_default="CPUs this process may use, capped by its cgroup's CPU quota",
    ))  # fmt: skip
    cgroup_root: str = setting(CGROUP_ROOT, Flag(
        "--cgroup-root", "Where the cgroup files are mounted: the CPU quota, CPU usage and "
        "memory limit the pull steering and the in-flight budget respect.",
    ))  # fmt: skip
    metrics_host: str = setting("0.0.0.0", Flag("--metrics-host"))
    metrics_port: int = setting(defaults.DEFAULT_METRICS_PORT, Flag(
        "--metrics-port", "Port for /metrics, /healthz, /readyz; 0 disables.", low=0, high=65535,
    ))  # fmt: skip
    shutdown_timeout_s: float = setting(30.0, Flag(
        "--shutdown-timeout", "Seconds a graceful stop may take before children are killed.",
        low=0.1, high=3600,
    ))  # fmt: skip
    child_timeout_s: float = setting(30.0, Flag(
        "--child-timeout",
        "Seconds without a heartbeat after which a child counts as stalled and is killed.",
        low=4, high=3600,
    ))  # fmt: skip
    startup_timeout_s: float = 60.0
    restart_max: int = setting(5, Flag(
        "--restart-max",
        "Restarts of one child allowed within --restart-window before giving up.",
        low=0, high=1000,
    ))  # fmt: skip
    restart_window_s: float = setting(30.0, Flag(
        "--restart-window", "Seconds.", low=1, high=86400,
    ))  # fmt: skip
    log_level: str = setting("INFO", Flag("--log-level", choices=LEVELS, upper=True))
    log_format: str = setting("text", Flag("--log-format", choices=FORMATS))
    # The settings the operator gave (a flag, its environment variable or --config), by
    # field name ("workers", "decoder.max_in_flight_bytes"): start-up may lower the others
    # to fit the container, never these, even when one equals its default (issue 27).
    given: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        # How long one commit waits for a lock held by someone else (a replaying admin
        # command): well inside the stall timeout, since the writer cannot heartbeat meanwhile.
        busy_timeout_ms = int(min(BUSY_TIMEOUT_MS, self.child_timeout_s * 1000 / 4))
        if self.writer.busy_timeout_ms != busy_timeout_ms:
            writer = dataclasses.replace(self.writer, busy_timeout_ms=busy_timeout_ms)
            object.__setattr__(self, "writer", writer)  # derived, so frozen all the same
