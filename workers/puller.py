"""The decoder's puller thread: pull, decode, hand the batch to the role, again.

Owns: `Puller`, the thread and its pacing: it pulls only while the supervisor lets its slot
(`workers.pull_share`), times a pull when the subscription is caught up
(`workers.pull_turns`), sizes each pull to the room the role's budgets leave at the average
message size so far, waits a failing Pub/Sub out (`workers.pull_backoff`), and says when
its open pull started, so that the role can tell a hung one, and how old the oldest message
of its latest pull was (the lag gauge, the signal to scale on).

Never: hold the messages it pulled (the role registers them before their batch leaves, and
owns their leases), talk to the supervisor, or decide what a valid scan is
(`workers.decode`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import MutableSequence
from typing import Protocol

from broker.subscription import PubSubOutage, PulledMessage, Subscription
from contracts import metrics
from contracts.messages import encode_batch
from workers.decoder_settings import DecoderSettings
from workers.pull_backoff import PullBackoff
from workers.pull_share import PullShare
from workers.pull_turns import PullTurns
from workers.pulled import decode_pulled

log = logging.getLogger(__name__)

# How often a decoder that may not pull now (`workers.pull_share`) looks again.
SHARE_RECHECK_S = 0.05
# A long poll returns as soon as messages arrive; this only bounds an idle pull, and with it
# how long a stopping decoder waits for its open pull (issue 25): Google's emulator honours a
# cancelled or abandoned pull only now and then (measured: 0 of 5, 5 of 5, 1 of 3 messages
# published after the cancel reached another puller; the rest went to the dead pull, unseen
# for the whole ack deadline), so a clean stop waits for the open pull to return and hands
# back what it brought (tests/pubsub/test_abandoned_pull.py). The emulator answers an idle
# pull about a second before its deadline (measured: after 1.0 s for 2, 4.0 s for 5), so 3 s
# keeps the stop prompt (a clean stop took 3.5-4 s, 2 s before) at the cost of one empty
# pull every 2 s per idle decoder.
PULL_TIMEOUT_S = 3.0
# How long past the pull's own deadline a stopping decoder still waits for it to return.
PULL_RETURN_GRACE_S = 2.0
# A pull that has not returned long after its own deadline is a hung gRPC call: the main loop
# would keep heartbeating while nothing is pulled, so the decoder reports it and exits.
PULL_HUNG_AFTER_S = 30.0


class PullOwner(Protocol):
    """What the puller needs of its decoder role."""

    slot: int
    subscription: Subscription
    settings: DecoderSettings
    pulling: bool  # False once the role stopped pulling: the thread ends

    def room_for_pull(self, average_message_bytes: float) -> int:
        """Messages the next pull may ask for; 0 after waiting a while for room."""

    def send_pulled(self, messages: list[PulledMessage], frame: bytes) -> int:
        """Hold these and send their batch; messages sent."""

    def pull_failed(self, reason: str) -> None:
        """Pulling failed for good: the role reports it and exits."""


class Puller:
    def __init__(
        self,
        owner: PullOwner,
        pull_starts: MutableSequence[float] | None = None,
        pull_share: MutableSequence[float] | None = None,
    ) -> None:
        self.owner = owner
        self.backoff = PullBackoff()
        self.turns = PullTurns(pull_starts, owner.slot)  # shared with the tree's other decoders
        self.share = PullShare(pull_share, owner.slot)  # may this one pull now (a backlog)
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None  # started by `start`
        self.started_at: float | None = None  # monotonic; None while not in a pull
        self.average_message_bytes = 1024.0  # sizes the next pull to the byte budget

    def start(self) -> None:
        """Start the thread, once."""
        if self.thread is None:
            self.thread = threading.Thread(target=self._loop, name="puller", daemon=True)
            self.thread.start()

    def stop(self) -> None:
        """Wake whatever the thread waits on; it ends once the role stopped pulling."""
        self.backoff.interrupt()
        self.stopping.set()

    def join(self, timeout: float) -> bool:
        """Wait for the thread to end; False if it is still running (a pull still open)."""
        if self.thread is not None:
            self.thread.join(timeout)
            return not self.thread.is_alive()
        return True

    def hung_for(self, now: float) -> float | None:
        """How long the open pull has been open, if that is past PULL_HUNG_AFTER_S."""
        started = self.started_at
        if started is not None and now - started > PULL_HUNG_AFTER_S:
            return now - started
        return None

    def pull_once(self, timeout: float = PULL_TIMEOUT_S) -> int:
        """Pull and decode at most what fits in the in-flight budgets; return messages sent."""
        if not self.share.may_pull():
            # Held back by the steering: its last pull's lag says nothing about now, and a
            # livemax gauge would keep showing it (the max is over decoders that pull).
            metrics.PULL_LAG.set(0)
            self.stopping.wait(SHARE_RECHECK_S)
            return 0
        size = self.owner.room_for_pull(self.average_message_bytes)
        if size <= 0:
            return 0
        if not self.turns.wait_for_turn(self.stopping):
            return 0
        if not self.owner.pulling:
            self.turns.give_up_turn()
            return 0  # no pull may start once the role stopped pulling: nobody would read it
        self.started_at = started = time.monotonic()
        messages = []
        try:
            messages = self.owner.subscription.pull(size, timeout=timeout)
        finally:
            self.started_at = None
            returned = time.monotonic()
            self.turns.pull_returned(returned - started, len(messages), size)
            self.share.pull_returned(returned, full=self.turns.backlog)
        try:
            return self._decode_and_send(messages)
        except BaseException:
            # Whatever failed after the pull (decode, encode, a metric, the send): hand the
            # messages back now, or they would stay invisible for their whole ack deadline.
            self._hand_back(messages)
            raise

    def _decode_and_send(self, messages: list[PulledMessage]) -> int:
        received_at = time.time()
        metrics.PULL_LAG.set(pull_lag(messages, received_at))
        if not messages:
            return 0
        metrics.MESSAGES_PULLED.inc(len(messages))
        batch = decode_pulled(
            self.owner.slot,
            messages,
            received_at=received_at,
            max_clock_skew_s=self.owner.settings.max_clock_skew_s,
        )
        self.average_message_bytes = 0.8 * self.average_message_bytes + 0.2 * (
            batch.nbytes / len(messages)
        )
        return self.owner.send_pulled(messages, encode_batch(batch))

    def _hand_back(self, messages: list[PulledMessage]) -> None:
        """Nack these; a failing nack is logged, not raised over the error being handled."""
        if not messages:
            return
        try:
            self.owner.subscription.nack([message.ack_id for message in messages])
        except Exception as exc:
            log.warning("could not hand back %d pulled messages: %s", len(messages), exc)

    def _loop(self) -> None:
        try:
            while self.owner.pulling:
                try:
                    self.pull_once()
                except PubSubOutage as exc:
                    self.backoff.wait_after_failure(exc)
                else:
                    self.backoff.succeeded()
        except Exception as exc:  # reported, then the main loop exits
            log.error("pulling failed: %s", exc)
            self.owner.pull_failed(f"pulling failed: {exc}")
        finally:
            metrics.PULL_LAG.set(0)  # no more pulls: its lag is no one's any more


def pull_lag(messages: list[PulledMessage], received_at: float) -> float:
    """Seconds the oldest of these waited since it was published; 0 for none (caught up),
    never below 0 (clocks of the publisher and this machine differ a little)."""
    if not messages:
        return 0.0
    return max(0.0, received_at - min(message.publish_time for message in messages))
