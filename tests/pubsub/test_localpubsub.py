"""The built-in Pub/Sub server's own parts: the queue with a fake clock, the state's waiting
pulls in-process, the command as a process, and the launcher's choice of server.

What both servers must do alike is tests/test_pubsub_conformance.py; this file holds what
only the built-in one has (its queue, its flow control, its command) and its side of the
points where Google's emulator is laxer than real Pub/Sub.
"""

from __future__ import annotations

import itertools
import signal
import socket
import subprocess
import sys
import threading

import grpc
import pytest
from click.testing import CliRunner

from commands.miniscan import main as miniscan
from contracts.exit_codes import EXIT_STARTUP
from localpubsub import names, protos
from localpubsub.cli import READY_MARKER
from localpubsub.queue import MessageQueue, QueuedMessage
from localpubsub.state import PubSubState
from testkit import emulator as launcher

TOPIC = "projects/p/topics/scans"
SUBSCRIPTION = "projects/p/subscriptions/scan-sub"


def item(data: bytes) -> QueuedMessage:
    return QueuedMessage(protos.PubsubMessage(data=data), len(data))


def datas(taken) -> list[bytes]:
    return [queued.message.data for _, queued in taken]


# --- The queue, with a fake clock ---------------------------------------------------------


def test_an_expired_lease_goes_back_to_the_front_and_a_nack_at_once():
    queue = MessageQueue(itertools.count(1))
    queue.add([item(b"a"), item(b"b"), item(b"c")])
    [(first, _)] = queue.take(1, 1000, lease_s=10, now=0.0)
    assert queue.next_expiry() == 10.0
    assert datas(queue.take(1, 1000, lease_s=10, now=9.9)) == [b"b"]
    assert datas(queue.take(5, 1000, lease_s=10, now=10.0)) == [b"a", b"c"]  # a expired
    queue.acknowledge([first])  # its lease is gone: ignored
    assert queue.take(1, 1000, lease_s=10, now=10.0) == []
    leased = sorted(queue.leases)
    assert queue.modify(leased[:1], 0, now=11.0) == 1
    assert datas(queue.take(5, 1000, lease_s=10, now=11.0)) == [b"b"]


def test_a_moved_deadline_leaves_its_old_heap_entry_stale():
    queue = MessageQueue(itertools.count(1))
    queue.add([item(b"a")])
    [(number, _)] = queue.take(1, 1000, lease_s=2, now=0.0)
    queue.modify([number], 6, now=1.0)
    assert queue.expire(now=3.0) == 0
    assert queue.next_expiry() == 7.0
    assert queue.expire(now=7.0) == 1
    assert queue.next_expiry() is None


def test_a_pull_stops_at_its_byte_budget_but_always_takes_one():
    queue = MessageQueue(itertools.count(1))
    queue.add([item(b"x" * 600), item(b"y" * 600)])
    assert len(queue.take(10, 1000, lease_s=10, now=0.0)) == 1
    assert len(queue.take(10, 100, lease_s=10, now=0.0)) == 1


def test_ack_ids_name_their_subscription():
    ack_id = names.make_ack_id(SUBSCRIPTION, 42)
    assert names.parse_ack_id(SUBSCRIPTION, ack_id) == 42
    for bad in ("42", f"{SUBSCRIPTION}:x", f"{SUBSCRIPTION}:", "projects/p/subscriptions/o:1"):
        with pytest.raises(names.ApiError) as caught:
            names.parse_ack_id(SUBSCRIPTION, bad)
        assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT


# --- The state: waiting pulls, in-process ------------------------------------------------


@pytest.fixture
def state() -> PubSubState:
    state = PubSubState()
    state.create_topic(protos.Topic(name=TOPIC))
    state.create_subscription(protos.Subscription(name=SUBSCRIPTION, topic=TOPIC))
    return state


def pull_in_thread(
    state: PubSubState,
    subscription: str = SUBSCRIPTION,
    max_messages: int = 10,
    wait_s: float = 30.0,
    **kwargs,
) -> tuple[threading.Thread, list]:
    """A pull on its own thread; `result` gets its messages, or the ApiError it raised."""
    result: list = []

    def pull() -> None:
        try:
            result.extend(state.pull(subscription, max_messages, wait_s, **kwargs))
        except names.ApiError as exc:
            result.append(exc)

    thread = threading.Thread(target=pull)
    thread.start()
    return thread, result


def test_a_waiting_pull_wakes_on_publish(state):
    thread, result = pull_in_thread(state)
    state.publish(TOPIC, [protos.PubsubMessage(data=b"hello")])
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert [message.data for _, message in result] == [b"hello"]


def test_a_waiting_pull_wakes_when_a_lease_expires(state):
    state.publish(TOPIC, [protos.PubsubMessage(data=b"hello")])
    [(ack_id, _)] = state.pull(SUBSCRIPTION, 10, 0.0)
    state.modify_ack_deadline(SUBSCRIPTION, [ack_id], 1)
    thread, result = pull_in_thread(state, wait_s=20.0)
    thread.join(timeout=10)
    assert [message.data for _, message in result] == [b"hello"]


def test_delete_and_close_release_waiting_pulls(state):
    other = "projects/p/subscriptions/other-sub"
    state.create_subscription(protos.Subscription(name=other, topic=TOPIC))
    deleting, deleted_result = pull_in_thread(state)
    closing, closed_result = pull_in_thread(state, subscription=other)
    state.delete_subscription(SUBSCRIPTION)
    deleting.join(timeout=10)
    assert deleted_result[0].code == grpc.StatusCode.NOT_FOUND
    state.close()
    closing.join(timeout=10)
    assert not closing.is_alive() and closed_result == []


def test_a_stream_holds_no_more_than_its_outstanding_limit(state):
    state.publish(TOPIC, [protos.PubsubMessage(data=b"%d" % i) for i in range(5)])
    outstanding: set[int] = set()
    first = state.pull(SUBSCRIPTION, 2, 0.0, outstanding=outstanding)
    assert len(first) == 2 and len(outstanding) == 2
    assert state.pull(SUBSCRIPTION, 2, 0.0, outstanding=outstanding) == []
    blocked, result = pull_in_thread(state, max_messages=2, outstanding=outstanding)
    state.acknowledge(SUBSCRIPTION, [first[0][0]])  # room for one: the blocked pull wakes
    blocked.join(timeout=10)
    assert len(result) == 1


def test_where_googles_emulator_is_laxer_the_builtin_server_follows_real_pubsub(state):
    state.publish(TOPIC, [protos.PubsubMessage(data=b"x")])
    [(ack_id, _)] = state.pull(SUBSCRIPTION, 1, 0.0)
    with pytest.raises(names.ApiError, match="must be 0 to 600"):
        state.modify_ack_deadline(SUBSCRIPTION, [ack_id], 601)
    with pytest.raises(names.ApiError, match="No max_messages"):
        state.pull(SUBSCRIPTION, -1, 0.0)


# --- The command, as a process -------------------------------------------------------------


def start_server(*args: str) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "localpubsub", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    return process, process.stdout.readline()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_the_command_prints_the_real_port_and_stops_cleanly_on_a_signal(signum):
    process, line = start_server("--host=127.0.0.1", "--port=0")
    try:
        assert line.startswith(READY_MARKER + " ")
        port = int(line.split()[-1])
        assert port > 0
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # it accepts connections once it has said so
        process.send_signal(signum)
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
        process.wait()


@pytest.mark.timeout(60)
def test_a_busy_port_is_an_error_that_names_it():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        process, line = start_server(f"--port={taken.getsockname()[1]}")
        assert process.wait(timeout=30) == EXIT_STARTUP
        assert line == ""
        # Ours is the only line: the port is tried before gRPC's core can log its own.
        said = process.stderr.read().strip().splitlines()
        assert said == [f"Error: cannot listen on 127.0.0.1:{taken.getsockname()[1]}: "
                        "Address already in use"]  # fmt: skip


def test_miniscan_emulator_is_registered():
    result = CliRunner().invoke(miniscan, ["emulator", "--help"])
    assert result.exit_code == 0
    assert "--port" in result.output


# --- The launcher's choice -------------------------------------------------------------------


def test_the_environment_forces_a_server_and_a_typo_is_an_error(monkeypatch):
    monkeypatch.setenv(launcher.SERVER_ENV, "builtin")
    assert launcher.choose_server() == launcher.BUILTIN
    assert launcher.choose_server("google") == launcher.GOOGLE  # an explicit kind wins
    monkeypatch.setenv(launcher.SERVER_ENV, "gogle")
    with pytest.raises(launcher.EmulatorError, match="expected google or builtin"):
        launcher.choose_server()


def test_without_the_cloud_sdk_the_builtin_server_is_chosen(monkeypatch, tmp_path):
    monkeypatch.delenv(launcher.SERVER_ENV, raising=False)
    monkeypatch.delenv("CLOUDSDK_ROOT_DIR", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no gcloud
    assert launcher.choose_server() == launcher.BUILTIN
    command = launcher.find_emulator_command("127.0.0.1", 0, "p")
    assert command[:3] == [sys.executable, "-m", "localpubsub"]
    with pytest.raises(launcher.EmulatorError, match="not installed"):
        launcher.find_emulator_command("127.0.0.1", 0, "p", launcher.GOOGLE)


@pytest.mark.timeout(60)
def test_the_launcher_starts_the_builtin_server_on_a_port_it_picks(tmp_path):
    with launcher.start_emulator(kind=launcher.BUILTIN, log_dir=str(tmp_path)) as server:
        assert server.kind == launcher.BUILTIN
        host, port = server.host.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=5):
            pass
    assert server.process.returncode == 0
