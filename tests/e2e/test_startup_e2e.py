"""On its way to ready the tree imports the Pub/Sub client in one interpreter only.

The start-up check used to run in a spawned interpreter that imported the client for one
call, in series before the decoders' fork server imported it again: 0.45-0.65 s of CPU on
the path to the first pull, on 2 cores. The check is now a fork of that server
(`supervisor.subscription_check`, `supervisor.start_methods`). With PYTHONPROFILEIMPORTTIME,
which every process of the tree inherits, each interpreter that imports grpc writes one
line for it to the shared log: a count, not a time, so it cannot flake on a busy machine.
"""

from __future__ import annotations

import re

import pytest
from supervisor_harness import RunningSupervisor

pytestmark = pytest.mark.emulator

GRPC_IMPORTED = re.compile(r"^import time:.*\|\s+grpc$", re.MULTILINE)


def test_the_pubsub_client_is_imported_once_on_the_way_to_ready(
    pubsub_target, tmp_path, monkeypatch
):
    monkeypatch.setenv("PYTHONPROFILEIMPORTTIME", "1")
    supervisor = RunningSupervisor(pubsub_target, tmp_path / "scans.db", tmp_path / "log")
    try:
        assert supervisor.wait_ready(60), supervisor.log()[-2000:]
        assert supervisor.stop() == 0
    finally:
        supervisor.kill()
    # The fork server's import; the check and the decoders are its forks, the writer and
    # the supervisor never load the client.
    assert len(GRPC_IMPORTED.findall(supervisor.log())) == 1
