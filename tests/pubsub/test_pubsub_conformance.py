"""One conformance suite, two Pub/Sub servers: Google's emulator and the built-in one (issue 16).

Every test runs against each server, started by the launcher (`testkit.emulator`) with its kind
forced; Google's runs wherever its emulator is installed, and is the reference: the built-in
server is trusted only as far as this suite reaches. The tests assert what Pub/Sub promises
and miniscan relies on (at-least-once delivery, leases, nacks, ids, attributes, 10 MB
messages, concurrent pullers, streaming pull, status codes), never what it does not promise:
no ordering without ordering keys, no exact redelivery timing beyond "not before the
deadline, soon after it".

Where the two were found to differ, this suite asserts neither side: Google's emulator
accepts a lease extension above 600 s and a pull of a negative number of messages, which
real Pub/Sub and the built-in server refuse (tests/test_localpubsub.py checks that side).
"""

from __future__ import annotations

import itertools
import threading
import time

import pubsub_servers
import pytest
from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1
from pubsub_servers import data_of

from broker import client

pytestmark = [
    pytest.mark.emulator,
    # return_immediately is deprecated, but miniscan's tests use it and both servers honour it.
    pytest.mark.filterwarnings("ignore:The return_immediately flag:DeprecationWarning"),
]

TEN_MB = 9_990_000  # the largest round number under the 10,000,000-byte publish request limit
# The fixtures: each server in turn, and a fresh project with a topic and subscription on it.
pubsub_server = pubsub_servers.pubsub_server
target = pubsub_servers.target

# --- Delivery and leases -----------------------------------------------------------------


def test_an_unacked_message_is_redelivered_after_the_subscription_ack_deadline(target):
    target.publish(b"once")
    [first] = target.pull()
    delivered = time.monotonic()
    assert target.pull(timeout=4) == [], "redelivered while its lease held"
    [again] = target.pull_until(1, within=30)
    assert again.message.message_id == first.message.message_id
    assert again.ack_id != first.ack_id
    assert time.monotonic() - delivered >= 9.0, "redelivered before the 10 s deadline"
    target.ack(again.ack_id)
    assert target.pull(now=True) == []


def test_a_nack_redelivers_at_once(target):
    target.publish(b"nacked")
    [first] = target.pull()
    target.modack(0, first.ack_id)
    started = time.monotonic()
    [again] = target.pull(timeout=10)
    assert time.monotonic() - started < 3
    assert again.message.message_id == first.message.message_id


def test_a_later_deadline_holds_the_message_past_its_earlier_one(target):
    target.publish(b"held")
    [first] = target.pull()
    target.modack(2, first.ack_id)
    extended = time.monotonic()
    target.modack(6, first.ack_id)  # replaces the 2 s lease
    assert target.pull(timeout=4.5) == [], "redelivered at the deadline it was moved from"
    [again] = target.pull_until(1, within=20)
    assert again.message.message_id == first.message.message_id
    assert time.monotonic() - extended >= 5.5


def test_acks_of_unknown_acked_or_expired_ids_are_not_errors(target):
    target.ack(f"{target.subscription}:987654321")  # well-formed, never issued
    target.publish(b"expires")
    [first] = target.pull()
    target.modack(1, first.ack_id)
    [second] = target.pull_until(1, within=20)
    assert second.message.message_id == first.message.message_id
    target.ack(first.ack_id)  # expired: accepted, and it does not ack the new delivery
    target.modack(1, second.ack_id)
    [third] = target.pull_until(1, within=20)
    assert third.message.message_id == first.message.message_id
    target.ack(third.ack_id)
    target.ack(third.ack_id)  # twice
    target.modack(0, third.ack_id)  # a nack of an acked message brings nothing back
    assert target.pull(timeout=3) == []


def test_a_pull_returns_as_soon_as_a_message_arrives(target):
    assert target.pull(now=True) == []
    result: list = []
    puller = threading.Thread(target=lambda: result.extend(target.pull(timeout=30)))
    started = time.monotonic()
    puller.start()
    target.publish(b"late")
    puller.join(timeout=40)
    assert data_of(result) == [b"late"]
    assert time.monotonic() - started < 10


def test_every_subscription_gets_every_message_published_after_it_exists(target):
    other = f"projects/{target.project}/subscriptions/other-sub"
    target.subscriber.create_subscription(request={"name": other, "topic": target.topic})
    target.publish(b"both")
    late = f"projects/{target.project}/subscriptions/late-sub"
    target.subscriber.create_subscription(request={"name": late, "topic": target.topic})
    assert data_of(target.pull()) == [b"both"]
    target.subscription = other
    assert data_of(target.pull()) == [b"both"]
    target.subscription = late
    assert target.pull(timeout=3) == []


# --- Messages ----------------------------------------------------------------------------


def test_message_ids_are_unique_and_publish_times_are_set_by_the_server(target):
    before = time.time()
    ids = [target.publish(f"m{i}".encode()) for i in range(20)]
    futures = [target.publisher.publish(target.topic, f"b{i}".encode()) for i in range(80)]
    ids += [future.result(timeout=60) for future in futures]
    after = time.time()
    assert len(set(ids)) == 100
    assert all(message_id.isdigit() for message_id in ids)
    received = target.pull_until(100)
    assert sorted(m.message.message_id for m in received) == sorted(ids)
    times = {m.message.message_id: m.message.publish_time.ToNanoseconds() / 1e9 for m in received}
    assert all(before - 1 <= t <= after + 1 for t in times.values())
    # The first 20 were published one after another: their times do not run backwards, give
    # or take a clock's jitter (Pub/Sub states no such promise to the microsecond).
    sequential = [times[message_id] for message_id in ids[:20]]
    assert all(b >= a - 0.5 for a, b in itertools.pairwise(sequential))


def test_data_and_attributes_round_trip_exactly(target):
    binary = bytes(range(256)) * 4
    target.publish(binary, kind="binary", empty="", unicode="größe ✓")
    target.publish(b"", only="attributes")  # data may be empty when attributes are not
    received = {m.message.data: dict(m.message.attributes) for m in target.pull_until(2)}
    assert received == {
        binary: {"kind": "binary", "empty": "", "unicode": "größe ✓"},
        b"": {"only": "attributes"},
    }


def test_a_message_of_almost_10_mb_round_trips(target):
    payload = bytes(range(256)) * (TEN_MB // 256) + b"x" * (TEN_MB % 256)
    assert len(payload) == TEN_MB
    target.publish(payload, size="10MB")
    [received] = target.pull_until(1)
    assert received.message.data == payload
    assert dict(received.message.attributes) == {"size": "10MB"}


def test_many_concurrent_pullers_get_distinct_messages_and_together_all(target):
    futures = [target.publisher.publish(target.topic, b"%d" % i) for i in range(600)]
    for future in futures:
        future.result(timeout=60)
    seen: list[list[bytes]] = [[] for _ in range(8)]
    lock = threading.Lock()
    done = threading.Event()
    deadline = time.monotonic() + 60

    def pull_and_ack(mine: list[bytes]) -> None:
        subscriber = client.subscriber_client()  # a channel of its own, as a decoder has
        try:
            while not done.is_set() and time.monotonic() < deadline:
                request = {"subscription": target.subscription, "max_messages": 25}
                try:
                    response = subscriber.pull(request=request, timeout=3, retry=None)
                except gexc.DeadlineExceeded:
                    continue
                received = type(response).pb(response).received_messages
                ack_ids = [m.ack_id for m in received]
                if ack_ids:
                    subscriber.acknowledge(subscription=target.subscription, ack_ids=ack_ids)
                mine += [m.message.data for m in received]
                with lock:
                    if sum(map(len, seen)) >= 600:
                        done.set()
        finally:
            subscriber.close()

    pullers = [threading.Thread(target=pull_and_ack, args=(mine,)) for mine in seen]
    for puller in pullers:
        puller.start()
    for puller in pullers:
        puller.join(timeout=90)
    everything = [data for mine in seen for data in mine]
    assert len(everything) == len(set(everything)) == 600, "a message went to two pullers"
    assert set(everything) == {b"%d" % i for i in range(600)}
    assert sum(1 for mine in seen if mine) >= 2, "one puller got everything"


# --- Streaming pull (the client's subscribe(), as bench/e2e_naive.py uses it) --------------


def test_streaming_pull_delivers_and_its_acks_stick(target):
    count = 200
    received: dict[bytes, str] = {}
    lock = threading.Lock()
    all_in = threading.Event()

    def callback(message) -> None:
        message.ack()
        with lock:
            received[message.data] = message.ack_id
            if len(received) == count:
                all_in.set()

    subscriber = pubsub_v1.SubscriberClient()  # the client's own defaults, as users have them
    try:
        future = subscriber.subscribe(target.subscription, callback)
        futures = [target.publisher.publish(target.topic, b"s%d" % i) for i in range(count)]
        for publish in futures:
            publish.result(timeout=60)
        assert all_in.wait(60), f"{len(received)} of {count} arrived"
        future.cancel()  # sends the acks still queued, then closes the stream
        future.result(timeout=30)
    finally:
        subscriber.close()
    assert set(received) == {b"s%d" % i for i in range(count)}
    # Nacking what was acked brings nothing back; what was not acked would come back now.
    ack_ids = list(received.values())
    for start in range(0, count, 100):
        target.modack(0, *ack_ids[start : start + 100])
    assert target.pull(timeout=3) == []


def test_streaming_pull_of_a_missing_subscription_fails_with_not_found(target):
    subscriber = pubsub_v1.SubscriberClient()
    try:
        missing = f"projects/{target.project}/subscriptions/no-such-sub"
        future = subscriber.subscribe(missing, lambda message: message.ack())
        with pytest.raises(gexc.NotFound):
            future.result(timeout=30)
    finally:
        subscriber.close()


# --- Admin calls and their status codes ---------------------------------------------------


def test_creating_twice_is_already_exists(target):
    with pytest.raises(gexc.AlreadyExists):
        target.publisher.create_topic(request={"name": target.topic})
    with pytest.raises(gexc.AlreadyExists):
        target.subscriber.create_subscription(
            request={"name": target.subscription, "topic": target.topic}
        )


def test_what_does_not_exist_is_not_found(target):
    topic = f"projects/{target.project}/topics/no-such-topic"
    subscription = f"projects/{target.project}/subscriptions/no-such-sub"
    with pytest.raises(gexc.NotFound):
        target.publisher.get_topic(request={"topic": topic})
    with pytest.raises(gexc.NotFound):
        target.publisher.publish(topic, b"lost").result(timeout=30)
    with pytest.raises(gexc.NotFound):
        target.subscriber.create_subscription(request={"name": subscription, "topic": topic})
    with pytest.raises(gexc.NotFound):
        target.subscriber.get_subscription(request={"subscription": subscription})
    target.subscription = subscription
    with pytest.raises(gexc.NotFound):
        target.pull()
    with pytest.raises(gexc.NotFound):
        target.ack(f"{subscription}:1")
    with pytest.raises(gexc.NotFound):
        target.modack(0, f"{subscription}:1")


@pytest.mark.parametrize(
    "name",
    ["ab", "1starts-with-a-digit", "goog-reserved", "has/slash", "x" * 256],
    ids=lambda name: name if len(name) < 50 else f"{len(name)}-characters",
)
def test_bad_names_are_invalid_arguments(target, name):
    with pytest.raises(gexc.InvalidArgument):
        target.publisher.create_topic(request={"name": f"projects/{target.project}/topics/{name}"})
    subscription = f"projects/{target.project}/subscriptions/{name}"
    with pytest.raises(gexc.InvalidArgument):
        target.subscriber.create_subscription(request={"name": subscription, "topic": target.topic})


def test_ack_deadlines_out_of_bounds_and_malformed_requests_are_invalid_arguments(target):
    def create(seconds: int) -> int:
        name = f"projects/{target.project}/subscriptions/deadline-{seconds + 10}"
        request = {"name": name, "topic": target.topic, "ack_deadline_seconds": seconds}
        return target.subscriber.create_subscription(request=request).ack_deadline_seconds

    assert create(0) == 10  # 0: the default
    assert create(600) == 600
    for seconds in (-1, 601):
        with pytest.raises(gexc.InvalidArgument):
            create(seconds)
    target.publish(b"x")
    [message] = target.pull()
    with pytest.raises(gexc.InvalidArgument):
        target.modack(-1, message.ack_id)
    with pytest.raises(gexc.InvalidArgument):
        target.ack()  # no ack ids
    with pytest.raises(gexc.InvalidArgument):
        target.ack("not-an-ack-id")
    other = f"projects/{target.project}/subscriptions/other-sub"
    with pytest.raises(gexc.InvalidArgument):  # an ack id of another subscription
        target.ack(f"{other}:{message.ack_id.rpartition(':')[2]}")
    with pytest.raises(gexc.InvalidArgument):
        target.pull(max_messages=0)
    with pytest.raises(gexc.InvalidArgument):
        target.publish(b"")  # neither data nor attributes


def test_listing_pages_through_a_projects_topics_and_subscriptions(target):
    topics = [target.topic] + [f"projects/{target.project}/topics/more-{i}" for i in range(4)]
    for topic in topics[1:]:
        target.publisher.create_topic(request={"name": topic})
    subscriptions = [target.subscription] + [
        f"projects/{target.project}/subscriptions/more-sub-{i}" for i in range(2)
    ]
    for subscription in subscriptions[1:]:
        target.subscriber.create_subscription(request={"name": subscription, "topic": topics[1]})
    project = f"projects/{target.project}"
    pages = list(target.publisher.list_topics(request={"project": project, "page_size": 2}).pages)
    assert [len(page.topics) for page in pages] == [2, 2, 1]
    assert sorted(t.name for page in pages for t in page.topics) == sorted(topics)
    listed = target.subscriber.list_subscriptions(request={"project": project})
    assert sorted(s.name for s in listed) == sorted(subscriptions)
    of_topic = target.publisher.list_topic_subscriptions(request={"topic": topics[1]})
    assert sorted(of_topic) == sorted(subscriptions[1:])


def test_deleting_a_topic_keeps_its_subscriptions_and_their_messages(target):
    target.publish(b"kept")
    target.publisher.delete_topic(request={"topic": target.topic})
    with pytest.raises(gexc.NotFound):
        target.publisher.delete_topic(request={"topic": target.topic})
    got = target.subscriber.get_subscription(request={"subscription": target.subscription})
    assert got.topic == "_deleted-topic_"
    assert data_of(target.pull()) == [b"kept"]
    target.subscriber.delete_subscription(request={"subscription": target.subscription})
    with pytest.raises(gexc.NotFound):
        target.subscriber.delete_subscription(request={"subscription": target.subscription})
