"""Everything the local Pub/Sub server knows, in memory, behind one lock.

Owns: topics, subscriptions (each a `localpubsub.subscribed.Subscribed`: its `MessageQueue`
and the condition its pulls wait on, on the one lock); message ids and publish times; the
checks and status codes of every call (as `ApiError`; what a new subscription may ask for is
`localpubsub.subscription_config`); and the pull loop: take what is there, else wait.

Never: touch gRPC or the disk, or sleep for a fixed time. One lock for all is deliberate:
every call holds it for microseconds, the gRPC layer around it costs far more, and a single
lock keeps publish's fan-out to several subscriptions atomic.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence

from localpubsub import names, protos
from localpubsub.names import already_exists, invalid, not_found
from localpubsub.queue import MessageQueue, QueuedMessage
from localpubsub.subscribed import Subscribed
from localpubsub.subscription_config import MAX_ACK_DEADLINE_S, new_subscription_config

# Pub/Sub's limit on one publish request, and what Google's emulator puts in one pull
# response at most (a pull of several 9.9 MB messages returns them one by one).
MAX_REQUEST_BYTES = 10_000_000

Taken = list[tuple[str, protos.PubsubMessage]]


class PubSubState:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._topics: dict[str, protos.Topic] = {}
        self._topic_subscriptions: dict[str, set[str]] = {}
        self._subscriptions: dict[str, Subscribed] = {}
        self._message_ids = itertools.count(1)
        self._ack_numbers = itertools.count(1)
        self._last_publish_ns = 0
        self.closed = False

    # --- topics ------------------------------------------------------------------------

    def create_topic(self, request: protos.Topic) -> protos.Topic:
        name = names.check_topic(request.name)
        topic = protos.Topic(name=name, labels=dict(request.labels))
        with self._lock:
            if name in self._topics:
                raise already_exists("Topic already exists")
            self._topics[name] = topic
            self._topic_subscriptions[name] = set()
        return _copy(topic)

    def get_topic(self, name: str) -> protos.Topic:
        with self._lock:
            return _copy(self._topic(name))

    def delete_topic(self, name: str) -> None:
        with self._lock:
            self._topic(name)
            del self._topics[name]
            # Its subscriptions live on with what they hold, as on Pub/Sub.
            for subscription in self._topic_subscriptions.pop(name):
                self._subscriptions[subscription].config.topic = names.DELETED_TOPIC

    def list_topics(self, project: str, page_size: int, page_token: str):
        prefix = names.check_project(project) + "/topics/"
        with self._lock:
            found = sorted(name for name in self._topics if name.startswith(prefix))
            page, token = _page(found, page_size, page_token)
            return [_copy(self._topics[name]) for name in page], token

    def list_topic_subscriptions(self, topic: str, page_size: int, page_token: str):
        names.check_topic(topic)
        with self._lock:
            found = sorted(self._topic_subscriptions.get(topic, ()))
            return _page(found, page_size, page_token)

    def publish(self, topic: str, messages: Sequence[protos.PubsubMessage]) -> list[str]:
        """Give each message an id and the publish time, then queue it on every subscription
        of the topic; the ids in order."""
        names.check_topic(topic)
        if not messages:
            raise invalid("No messages specified")
        if any(not message.data and not message.attributes for message in messages):
            raise invalid("Some messages are empty")
        with self._lock:
            self._topic(topic)
            # Never earlier than the last publish, so that publish times do not run backwards
            # when the wall clock is stepped back.
            now_ns = self._last_publish_ns = max(time.time_ns(), self._last_publish_ns)
            ids = []
            for message in messages:
                message.message_id = str(next(self._message_ids))
                message.publish_time.FromNanoseconds(now_ns)
                ids.append(message.message_id)
            items = [QueuedMessage(message, message.ByteSize()) for message in messages]
            for name in self._topic_subscriptions[topic]:
                subscribed = self._subscriptions[name]
                subscribed.queue.add(items)
                subscribed.notify(len(items))
        return ids

    # --- subscriptions -----------------------------------------------------------------

    def create_subscription(self, request: protos.Subscription) -> protos.Subscription:
        config = new_subscription_config(request)
        name, topic = config.name, config.topic
        with self._lock:
            if name in self._subscriptions:
                raise already_exists("Subscription already exists")
            if topic not in self._topics:
                raise not_found("Subscription topic does not exist")
            queue = MessageQueue(self._ack_numbers)
            self._subscriptions[name] = Subscribed(config, queue, self._lock)
            self._topic_subscriptions[topic].add(name)
            return _copy(config)

    def get_subscription(self, name: str) -> protos.Subscription:
        with self._lock:
            return _copy(self._subscription(name).config)

    def delete_subscription(self, name: str) -> None:
        with self._lock:
            subscribed = self._subscription(name)
            del self._subscriptions[name]
            self._topic_subscriptions.get(subscribed.config.topic, set()).discard(name)
            subscribed.ready.notify_all()  # its waiting pulls answer NOT_FOUND

    def list_subscriptions(self, project: str, page_size: int, page_token: str):
        prefix = names.check_project(project) + "/subscriptions/"
        with self._lock:
            found = sorted(name for name in self._subscriptions if name.startswith(prefix))
            page, token = _page(found, page_size, page_token)
            return [_copy(self._subscriptions[name].config) for name in page], token

    def acknowledge(self, name: str, ack_ids: Sequence[str]) -> None:
        with self._lock:
            subscribed = self._subscription(name)
            if not ack_ids:
                raise invalid("No ack ids specified.")
            numbers = [names.parse_ack_id(name, ack_id) for ack_id in ack_ids]
            subscribed.queue.acknowledge(numbers)
            if subscribed.blocked_streams:
                subscribed.ready.notify_all()

    def modify_ack_deadline(self, name: str, ack_ids: Sequence[str], seconds: int) -> None:
        with self._lock:
            subscribed = self._subscription(name)
            if not ack_ids:
                raise invalid("No ack ids specified")
            if seconds < 0:
                raise invalid("Ack deadline cannot be negative")
            if seconds > MAX_ACK_DEADLINE_S:
                # Real Pub/Sub refuses this too; Google's emulator accepts it (a difference
                # the conformance suite knows of, see its module docstring).
                raise invalid(f"Invalid ack deadline given: {seconds} (must be 0 to 600)")
            numbers = [names.parse_ack_id(name, ack_id) for ack_id in ack_ids]
            handed_back = subscribed.queue.modify(numbers, seconds, self._clock())
            if handed_back or subscribed.blocked_streams:
                subscribed.ready.notify_all()

    def pull(
        self,
        name: str,
        max_messages: int,
        wait_s: float,
        *,
        lease_s: int | None = None,
        stopped: Callable[[], bool] | None = None,
        outstanding: set[int] | None = None,
    ) -> Taken:
        """Lease up to `max_messages`: at once when any are there, else as soon as some
        arrive within `wait_s` (math.inf: until `stopped()` or close); [] when none came.

        A stream passes the ack numbers it delivered in `outstanding` and is then held to
        `max_messages` unacknowledged at a time, as Pub/Sub's flow control does.
        """
        if max_messages <= 0:
            raise invalid("No max_messages specified")
        with self._lock:
            subscribed = self._subscription(name)
            give_up = self._clock() + wait_s
            while True:
                now = self._clock()
                room = max_messages
                if outstanding is not None:
                    outstanding.intersection_update(subscribed.queue.still_leased(outstanding))
                    room -= len(outstanding)
                deadline_s = lease_s or subscribed.config.ack_deadline_seconds
                taken = subscribed.queue.take(room, MAX_REQUEST_BYTES, deadline_s, now)
                if taken:
                    if outstanding is not None:
                        outstanding.update(number for number, _ in taken)
                    if subscribed.queue.backlog:
                        subscribed.notify(1)  # pass it on: more is waiting
                    return [(names.make_ack_id(name, n), item.message) for n, item in taken]
                if self.closed or now >= give_up or (stopped is not None and stopped()):
                    return []
                subscribed.wait(give_up - now, room == 0, now)
                if self._subscriptions.get(name) is not subscribed:
                    raise not_found("Subscription does not exist")

    def wake(self, name: str) -> None:
        """Wake the pulls waiting on `name`, e.g. because their stream ended."""
        with self._lock:
            subscribed = self._subscriptions.get(name)
            if subscribed is not None:
                subscribed.ready.notify_all()

    def close(self) -> None:
        """Make every waiting pull return now, and every later one at once."""
        with self._lock:
            self.closed = True
            for subscribed in self._subscriptions.values():
                subscribed.ready.notify_all()

    # --- inside the lock ---------------------------------------------------------------

    def _topic(self, name: str) -> protos.Topic:
        topic = self._topics.get(names.check_topic(name))
        if topic is None:
            raise not_found("Topic not found")
        return topic

    def _subscription(self, name: str) -> Subscribed:
        subscribed = self._subscriptions.get(names.check_subscription(name))
        if subscribed is None:
            raise not_found("Subscription does not exist")
        return subscribed


def _copy(message):
    """A copy to hand out: the stored one may change (a deleted topic) while gRPC
    serializes outside the lock."""
    copy = type(message)()
    copy.CopyFrom(message)
    return copy


def _page(names_sorted: list[str], page_size: int, page_token: str) -> tuple[list[str], str]:
    """One page of `names_sorted` from `page_token` on; the token is the first name of the
    next page ('' at the end), as Google's emulator's is."""
    start = 0
    if page_token:
        start = next((i for i, n in enumerate(names_sorted) if n >= page_token), len(names_sorted))
    end = len(names_sorted) if page_size <= 0 else start + page_size
    token = names_sorted[end] if end < len(names_sorted) else ""
    return names_sorted[start:end], token
