"""Whether the tree and each child look healthy: verdicts on what the loop knows, the clock
passed in.

Owns: the stall rule (a ready child silent for longer than the child timeout, or a child not
ready within the start-up timeout), forgiving the silence of a tree that was suspended as a
whole, and the answers behind /readyz and /healthz.

Never: kill, log or read a clock; the supervisor acts on these verdicts.
"""

from __future__ import annotations

from collections.abc import Iterable

from supervisor.running_child import RunningChild
from supervisor.settings import SupervisorSettings
from supervisor.stopping import RUNNING

# A loop turn this much later than expected means the whole tree was suspended (Ctrl-Z, a
# paused VM): nobody could heartbeat, so silence from before it proves nothing.
SUSPENDED_AFTER_S = 2.0


def forgive_suspension(children: Iterable[RunningChild], last_tick: float, now: float) -> None:
    """After a suspension, count every child's silence and start-up from now on."""
    if now - last_tick <= SUSPENDED_AFTER_S:
        return
    for child in children:
        child.last_heartbeat = max(child.last_heartbeat, now)
        child.started_at = max(child.started_at, now - 1.0)


def stall_reason(child: RunningChild, now: float, settings: SupervisorSettings) -> str | None:
    """Why `child` must be killed as stuck, or None while it looks alive."""
    if child.ready:
        silent = now - child.last_heartbeat
        if silent > settings.child_timeout_s:
            return f"stalled: no heartbeat for {silent:.0f}s"
        return None
    if now - child.started_at > settings.startup_timeout_s:
        return f"not ready after {settings.startup_timeout_s:.0f}s"
    return None


def readiness(phase: str, children: list[RunningChild]) -> tuple[bool, str]:
    """/readyz: running, the writer can write the database (by its last heartbeat), and a
    decoder is pulling: ready and, by its last heartbeat, able to reach Pub/Sub (issues 12
    and 25: during an outage the children wait it out, and /readyz says so instead of
    claiming all is well)."""
    writer = next((c for c in children if c.id.is_writer), None)
    if phase != RUNNING:
        return False, f"stopping ({phase})"
    if writer is None or not writer.ready:
        return False, "writer not ready"
    if writer.database_problem:  # issue 25: the writer waits the outage out, holding its batch
        return False, f"database unavailable: the writer is retrying ({writer.database_problem})"
    decoders = [c for c in children if not c.id.is_writer and c.ready]
    if not decoders:
        return False, "no decoder ready"
    if not any(c.pubsub_ok for c in decoders):
        return False, "Pub/Sub unreachable: the decoders are retrying"
    return True, "ok"


def liveness(last_tick: float, now: float, max_silence_s: float) -> tuple[bool, str]:
    """/healthz: the supervisor loop turned within the last `max_silence_s` seconds."""
    silence = now - last_tick
    if silence > max_silence_s:
        return False, f"supervisor loop stuck for {silence:.0f}s"
    return True, "ok"
