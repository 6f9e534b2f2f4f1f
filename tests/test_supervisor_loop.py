"""The supervisor's loop, driven one turn at a time in-process, with real child processes."""

from __future__ import annotations

import multiprocessing
import os
import struct
import time

from supervisor.config import PipelineConfig
from supervisor.tree import Supervisor


def send_half_a_message_then_hang(link, config) -> None:
    """What a decoder frozen in the middle of sending a large batch leaves in its pipe."""
    fd = link.fileno()
    os.write(fd, struct.pack("!i", 2_000_000))
    os.write(fd, b"x" * 100_000)
    time.sleep(120)


def sleep_quietly(link, config) -> None:
    time.sleep(60)


def test_a_child_frozen_mid_message_cannot_freeze_the_loop():
    supervisor = Supervisor(
        PipelineConfig(workers=1, child_timeout_s=1.0),
        context=multiprocessing.get_context("spawn"),
    )
    supervisor._spawn("decoder-0", 0, send_half_a_message_then_hang, ())
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
    supervisor = Supervisor(PipelineConfig(workers=1, child_timeout_s=5.0))
    supervisor._spawn("decoder-0", 0, sleep_quietly, ())
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
    supervisor = Supervisor(PipelineConfig(workers=1))
    supervisor._spawn("writer", -1, sleep_quietly, ())
    supervisor._spawn("decoder-0", 0, sleep_quietly, ())
    try:
        assert supervisor.is_ready() == (False, "writer not ready")
        supervisor.children["writer"].ready = True
        assert supervisor.is_ready() == (False, "no decoder ready")
        supervisor.children["decoder-0"].ready = True
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
