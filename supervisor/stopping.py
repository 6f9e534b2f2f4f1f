"""The ordered graceful stop, as a pure state machine: which phase, and who hears what next.

Owns: the phases running -> draining -> flushing -> settling -> done, the shutdown deadline
and the kill grace of a forced stop. Draining: decoders were told StopPulling and each
answers EndOfStream after its last batch. Flushing: every decoder has, so the writer gets
Stop behind the last batch, commits and acks it, and exits. Settling: the writer is gone, so
each decoder gets Stop behind the last acks, nacks whatever was never acked, and exits. Done:
nobody is left. Time is passed in, so tests need no clock.

Never: send, kill, sleep or read a clock; restart anyone (no phase but running restarts).
"""

from __future__ import annotations

from dataclasses import dataclass

from contracts.messages import Stop
from supervisor.relay import WRITER, Delivery

RUNNING = "running"
DRAINING = "draining"
FLUSHING = "flushing"
SETTLING = "settling"
DONE = "done"

KILL_GRACE_S = 3.0


@dataclass
class GracefulStop:
    timeout_s: float  # from the start of the stop until it is forced
    kill_grace_s: float = KILL_GRACE_S  # from a forced stop (terminate) until kill
    phase: str = RUNNING
    deadline: float | None = None
    forced_at: float | None = None

    @property
    def running(self) -> bool:
        return self.phase == RUNNING

    @property
    def in_order(self) -> bool:
        """A graceful stop is under way and was not forced."""
        return self.phase != RUNNING and self.forced_at is None

    def begin(self, now: float) -> bool:
        """Start draining; False when a stop had already begun."""
        if self.phase != RUNNING:
            return False
        self.phase = DRAINING
        self.deadline = now + self.timeout_s
        return True

    def force(self, now: float) -> bool:
        """Give up on the order; False when the stop was already forced."""
        if self.forced_at is not None:
            return False
        self.forced_at = now
        self.phase = DONE
        return True

    def timed_out(self, now: float) -> bool:
        return self.forced_at is None and self.deadline is not None and now > self.deadline

    def kill_due(self, now: float) -> bool:
        return self.forced_at is not None and now - self.forced_at > self.kill_grace_s

    def advance(self, *, writer_up: bool, decoders: list[str], drained: bool) -> list[Delivery]:
        """Move on as far as the tree allows; return the Stops to send now, in order.

        `decoders` are the decoders alive now, `drained` whether each has sent EndOfStream.
        A child sent Stop is expected to exit cleanly from then on."""
        sends: list[Delivery] = []
        if self.phase == DRAINING and drained:
            self.phase = FLUSHING
            if writer_up:
                sends.append((WRITER, Stop()))
        if self.phase == FLUSHING and not writer_up:
            self.phase = SETTLING
            sends += [(name, Stop()) for name in decoders]
        if self.phase == SETTLING and not writer_up and not decoders:
            self.phase = DONE
        return sends
