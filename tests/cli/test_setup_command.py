"""`miniscan setup`: creates the topic and the subscription once, says so, and fails in one
line when Pub/Sub is unreachable."""

from __future__ import annotations

import uuid

import click
import pytest
from click.testing import CliRunner

from commands.miniscan import main as miniscan
from commands.setup import setup_command
from testkit.emulator import free_port


def test_setup_against_unreachable_pubsub_is_one_line_and_exit_3():
    env = {"PUBSUB_EMULATOR_HOST": f"127.0.0.1:{free_port()}"}
    result = CliRunner().invoke(setup_command, ["--connect-timeout", "0.5"], env=env)
    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("Error: Pub/Sub at 127.0.0.1:")


def test_setup_is_registered_for_the_miniscan_group():
    assert miniscan.get_command(click.Context(miniscan), "setup") is setup_command
    params = {param.name for param in setup_command.params}
    assert {"project", "topic", "subscription", "ack_deadline", "connect_timeout"} <= params


@pytest.mark.emulator
def test_setup_creates_what_is_missing_and_is_idempotent(pubsub_emulator):
    suffix = uuid.uuid4().hex[:10]
    args = ["setup", "--topic", f"setup-topic-{suffix}", "--subscription", f"setup-sub-{suffix}"]
    first = CliRunner().invoke(miniscan, args)
    assert first.exit_code == 0, first.output
    assert first.stdout.splitlines() == [
        f"created topic projects/test-project/topics/setup-topic-{suffix}",
        f"created subscription projects/test-project/subscriptions/setup-sub-{suffix} "
        "(ack deadline 10s)",
    ]
    second = CliRunner().invoke(miniscan, args)
    assert second.exit_code == 0
    assert "already exists" in second.stdout.splitlines()[0]
    assert "already exists (left unchanged)" in second.stdout.splitlines()[1]
