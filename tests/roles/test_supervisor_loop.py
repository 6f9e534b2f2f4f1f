"""The supervisor's loop, driven one turn at a time in-process, with real child processes
(stand-ins, not the real roles, given as its `ChildTargets`); and the loop's small pure
pieces, without any."""

from __future__ import annotations

import functools
import multiprocessing
import os
import pickle
import struct
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from types import SimpleNamespace

import pytest

from contracts import messages
from contracts.child_id import ChildId
from contracts.messages import (
    AckBatch,
    DecodedBatch,
    WriterLost,
    encode_batch,
    split_batch_frame,
)
from contracts.records import ScanRecord
from supervisor.children import ChildTargets
from supervisor.health import stall_reason
from supervisor.respawns import RespawnSchedule
from supervisor.restarts import RestartPolicy
from supervisor.settings import SupervisorSettings
from supervisor.start_methods import DECODER_PRELOAD, child_contexts
from supervisor.throughput import ThroughputSummary
from supervisor.tree import Supervisor

ROOT = str(Path(__file__).resolve().parents[2])
PYPROJECT = Path(ROOT) / "pyproject.toml"


# Stand-in targets: each is called as target(link, settings, *role_args), like the real ones.


def send_half_a_message_then_hang(link, settings, *role_args) -> None:
    """What a decoder frozen in the middle of sending a large batch leaves in its pipe."""
    fd = link.fileno()
    os.write(fd, struct.pack("!i", 2_000_000))
    os.write(fd, b"x" * 100_000)
    time.sleep(120)


def sleep_quietly(link, settings, *role_args) -> None:
    time.sleep(60)


def send_then_sleep(frame, link, settings, *role_args) -> None:
    link.send_bytes(frame)
    time.sleep(60)


def echo_to(out, link, settings, *role_args) -> None:
    """Pass on to `out` every frame received from the supervisor."""
    while True:
        try:
            out.send_bytes(link.recv_bytes())
        except EOFError:
            return


def exit_at_once(link, settings, *role_args) -> None:
    sys.exit(1)


def stand_ins(writer=sleep_quietly, decoder=sleep_quietly) -> ChildTargets:
    return ChildTargets(writer=writer, decoder=decoder)


def echoing(context=None):
    """A stand-in that passes on what it receives, and the end the test reads it from."""
    ours, theirs = (context or multiprocessing).Pipe(duplex=False)
    return functools.partial(echo_to, theirs), ours


def next_received(ours) -> object:
    assert ours.poll(30), "the stand-in received nothing"
    return pickle.loads(ours.recv_bytes())


def kill_children(supervisor: Supervisor) -> None:
    for child in supervisor.children.values():
        child.process.kill()
        child.process.join()


def test_a_child_frozen_mid_message_cannot_freeze_the_loop():
    supervisor = Supervisor(
        SupervisorSettings(workers=1, child_timeout_s=1.0),
        context=multiprocessing.get_context("spawn"),
        targets=stand_ins(decoder=send_half_a_message_then_hang),
    )
    supervisor.spawn_decoder(0)
    child = supervisor.children["decoder-0"]
    child.ready = True  # as if it had said Ready, so the heartbeat deadline applies
    deadline = time.monotonic() + 20
    try:
        while "decoder-0" in supervisor.children and time.monotonic() < deadline:
            turn_started = time.monotonic()
            supervisor.run_once()
            assert time.monotonic() - turn_started < 3, "one turn of the loop blocked"
        assert "decoder-0" not in supervisor.children, "the frozen child was never reaped"
        assert child.killed and child.last_error.startswith("stalled")
    finally:
        child.process.kill()
        child.process.join()


def test_children_are_not_blamed_for_a_suspended_tree():
    supervisor = Supervisor(SupervisorSettings(workers=1, child_timeout_s=5.0), targets=stand_ins())
    supervisor.spawn_decoder(0)
    child = supervisor.children["decoder-0"]
    try:
        assert child.process.is_alive()
        child.ready = True
        # The whole tree was stopped for a while (Ctrl-Z): nobody could heartbeat.
        child.last_heartbeat -= 60
        supervisor.last_tick -= 60
        supervisor.run_once()
        assert not child.killed, "a healthy child was killed after the tree resumed"
        assert "decoder-0" in supervisor.children
    finally:
        child.process.kill()
        child.process.join()


def test_readiness_needs_the_writer_and_a_decoder_and_liveness_needs_the_loop():
    supervisor = Supervisor(SupervisorSettings(workers=1), targets=stand_ins())
    supervisor.spawn_writer()
    supervisor.spawn_decoder(0)
    try:
        assert supervisor.is_ready() == (False, "writer not ready")
        supervisor.children["writer"].ready = True
        assert supervisor.is_ready() == (False, "no decoder ready")
        supervisor.children["decoder-0"].ready = True
        assert supervisor.is_ready() == (True, "ok")
        supervisor.handle_message(
            supervisor.children["decoder-0"], messages.Heartbeat("decoder-0", pubsub_ok=False)
        )
        assert supervisor.is_ready() == (False, "Pub/Sub unreachable: the decoders are retrying")
        supervisor.handle_message(supervisor.children["decoder-0"], messages.Heartbeat("decoder-0"))
        assert supervisor.is_ready() == (True, "ok")
        # Issue 25: the writer waits a database outage out; /readyz says so, with its reason.
        writer = supervisor.children["writer"]
        supervisor.handle_message(
            writer, messages.Heartbeat("writer", database_problem="cannot connect: refused")
        )
        ready, reason = supervisor.is_ready()
        assert not ready and reason.startswith("database unavailable") and "refused" in reason
        supervisor.handle_message(writer, messages.Heartbeat("writer"))
        assert supervisor.is_ready() == (True, "ok")
        supervisor.begin_stop()
        assert supervisor.is_ready()[0] is False
        assert supervisor.is_alive()[0] is True
        supervisor.last_tick -= 60
        alive, reason = supervisor.is_alive()
        assert not alive and "stuck" in reason
    finally:
        for child in supervisor.children.values():
            child.process.kill()
            child.process.join()


# --- the relay's deliveries, performed through real pipes ------------------------------------


def test_a_batch_that_arrived_with_no_writer_reaches_the_next_writer_byte_for_byte():
    frame = encode_batch(
        DecodedBatch(slot=0, records=[ScanRecord("10.0.0.1", 80, "HTTP", 1, "r", 2)],
                     record_ack_ids=["ack-1"], record_publish_times=[1.0])
    )  # fmt: skip
    writer, received = echoing()
    targets = stand_ins(writer=writer, decoder=functools.partial(send_then_sleep, frame))
    supervisor = Supervisor(SupervisorSettings(workers=1), targets=targets)
    try:
        supervisor.spawn_decoder(0)
        deadline = time.monotonic() + 30
        while not supervisor.relay.backlog:  # no writer yet: the batch waits
            assert time.monotonic() < deadline, "the decoder's batch never arrived"
            supervisor.run_once()
        supervisor.spawn_writer()
        assert received.poll(30), "the writer received nothing"
        assert received.recv_bytes() == split_batch_frame(frame)[1]
    finally:
        kill_children(supervisor)


def test_acks_for_an_empty_slot_reach_the_decoder_spawned_into_it():
    decoder, received = echoing()
    supervisor = Supervisor(SupervisorSettings(workers=1), targets=stand_ins(decoder=decoder))
    try:
        supervisor.spawn_writer()
        acks = AckBatch(slot=0, ack_ids=["ack-1", "ack-2"])
        supervisor.handle_message(supervisor.children["writer"], acks)
        supervisor.spawn_decoder(0)
        assert next_received(received) == acks
    finally:
        kill_children(supervisor)


def test_a_writer_that_dies_unasked_costs_each_decoder_a_writer_lost():
    decoder, received = echoing()
    targets = stand_ins(writer=exit_at_once, decoder=decoder)
    supervisor = Supervisor(SupervisorSettings(workers=1), targets=targets)
    try:
        supervisor.spawn_decoder(0)
        supervisor.spawn_writer()
        deadline = time.monotonic() + 30
        while "writer" in supervisor.children and time.monotonic() < deadline:
            supervisor.run_once()
        assert "writer" not in supervisor.children, "the dead writer was never reaped"
        assert ChildId.writer() in supervisor.respawns.due
        assert next_received(received) == WriterLost()
    finally:
        kill_children(supervisor)


# --- the loop's pure pieces -----------------------------------------------------------------


def test_respawns_come_due_in_crash_order_and_bound_the_wait():
    schedule = RespawnSchedule(RestartPolicy(max_restarts=1, window_s=30))
    decoder_1, writer = ChildId.decoder(1), ChildId.writer()
    assert schedule.crashed(decoder_1, now=10.0) == 0.25
    assert schedule.crashed(writer, now=10.1) == 0.25
    assert schedule.wait_at_most(now=10.2, longest=0.5) == pytest.approx(0.05)
    assert schedule.take_due(now=10.3) == [decoder_1]
    assert schedule.take_due(now=10.4) == [writer]
    assert not schedule and schedule.wait_at_most(now=11.0, longest=0.5) == 0.5
    assert schedule.crashed(writer, now=12.0) is None  # twice within the window: a storm
    assert not schedule


def test_stall_rules_and_the_throughput_summary():
    settings = SupervisorSettings(child_timeout_s=5, startup_timeout_s=20)
    child = SimpleNamespace(ready=False, started_at=100.0, last_heartbeat=100.0)
    assert stall_reason(child, 119.0, settings) is None
    assert stall_reason(child, 121.0, settings) == "not ready after 20s"
    child.ready = True
    assert stall_reason(child, 104.0, settings) is None
    assert stall_reason(child, 106.0, settings) == "stalled: no heartbeat for 6s"
    summary = ThroughputSummary(next_at=10.0, interval_s=10.0)
    assert summary.rates_if_due(9.9, lambda: pytest.fail("counted before it was due")) is None
    assert summary.rates_if_due(15.0, lambda: (300, 150)) == (20.0, 10.0)  # over 15 s
    assert summary.rates_if_due(25.0, lambda: (0, 0)) is None


def test_decoders_fork_from_a_preloading_server_unless_a_context_is_given():
    writer, decoders = child_contexts(None)
    assert writer.get_start_method() == "spawn"  # the writer never loads gRPC
    assert decoders.get_start_method() == "forkserver"
    assert "workers.decoder_process" in DECODER_PRELOAD
    # Every forked decoder re-runs the supervisor's script, whose one import is its entry
    # module: preloaded, that re-run costs nothing (supervisor.start_methods).
    entry = tomllib.loads(PYPROJECT.read_text())["project"]["scripts"]["miniscan-supervisor"]
    assert entry.partition(":")[0] in DECODER_PRELOAD
    spawn = multiprocessing.get_context("spawn")
    assert child_contexts(spawn) == (spawn, spawn)  # what the in-process tests ask for


def test_the_startup_check_forks_from_the_server_and_the_supervisor_never_loads_the_client():
    # The check is a fork of the decoders' server, which imported its module already: it
    # makes its call without importing the Pub/Sub client again (supervisor.start_methods).
    assert "supervisor.subscription_check" in DECODER_PRELOAD
    # The supervisor names the check's function to send it over; that import must not load
    # the client (58 MiB the supervisor would hold for nothing).
    imported = subprocess.run(
        [sys.executable, "-c", "import sys, supervisor.run; print(sorted(sys.modules))"],
        capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": ROOT},
    ).stdout  # fmt: skip
    assert "'grpc'" not in imported and "'google.cloud.pubsub_v1'" not in imported
