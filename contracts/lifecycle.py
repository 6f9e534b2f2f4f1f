"""The lifecycle every process role shares (issue 11), and the two ways its set-up can fail.

Owns: `ProcessRole`, what the one child driver in `supervisor.children` needs of a role, and
the exceptions a role's `open()` raises so that the driver can tell the supervisor whether a
restart could help:

    open()          acquire resources       CannotStart      -> StartupFailed, exit 3 (halt)
                                            NotAvailableYet  -> Crashed, exit 1 (restart me)
    run_once(t)     wait up to t for one supervisor message, handle it, then the periodic
                    work (leases, flush timer, heartbeat); False once `finished`
    handle_stop_signal()  SIGTERM arrived: log what it means for this role, finish
    shutdown()      settle what it holds and release its resources; always runs after open

Roles implement the protocol by shape; they need only the exceptions from here. A test builds
a role, calls `run_once(0)` and `shutdown()` in-process, and spawns nothing.

Never: import anything of miniscan, or hold behaviour; this module is the agreement only.
"""

from __future__ import annotations

from typing import Protocol


class CannotStart(Exception):
    """The role's resources refused it for a reason a restart will not fix (a missing
    subscription, a file that is not a miniscan database). The message is one line."""


class NotAvailableYet(Exception):
    """A resource did not answer: worth a restart with backoff. The message is one line.
    (The writer raises it no more: it opens even while its database is down and waits the
    outage out with its batch kept, issue 25; decoders still raise it for Pub/Sub.)"""


class ProcessRole(Protocol):
    finished: bool  # the loop is over: stopped as asked, link closed, or failed
    crash_reason: str | None  # set when the role ended itself on an error (restart me)

    def run_once(self, timeout: float = ...) -> bool: ...

    def handle_stop_signal(self) -> None: ...

    def shutdown(self) -> None: ...
