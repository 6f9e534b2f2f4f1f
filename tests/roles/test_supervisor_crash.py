"""The supervisor cannot hang: an exception that escapes its loop stops every child and
exits 1 within seconds (issue 12; before, it printed the traceback and stayed up forever,
its children still extending leases)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# A supervisor whose children are stand-ins that ignore SIGTERM (so the kill escalation is
# needed too), and whose loop raises on its fifth turn, as a bug or EMFILE on a respawn would.
SCRIPT = """
import json, signal, sys, time
from supervisor.children import ChildTargets
from supervisor.settings import SupervisorSettings
from supervisor.tree import Supervisor

def stubborn_child(link, settings, *role_args):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(600)

class Broken(Supervisor):
    turns = 0

    def _log_summary_if_due(self):
        self.turns += 1
        if self.turns == 5:
            pids = [c.process.pid for c in self.children.values()]
            print(json.dumps(pids), flush=True)
            raise RuntimeError("a bug in the supervisor loop")

if __name__ == "__main__":
    stubborn = ChildTargets(writer=stubborn_child, decoder=stubborn_child)
    settings = SupervisorSettings(workers=2, shutdown_timeout_s=2.0)
    sys.exit(Broken(settings, targets=stubborn).run())
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_an_exception_in_the_loop_stops_every_child_and_exits_1(tmp_path):
    script = tmp_path / "broken_supervisor.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    took = time.monotonic() - started
    assert result.returncode == 1, result.stderr[-2000:]
    assert "the supervisor loop failed" in result.stderr
    assert "RuntimeError: a bug in the supervisor loop" in result.stderr  # the traceback
    pids = json.loads(result.stdout.splitlines()[0])
    assert len(pids) == 3
    assert not [pid for pid in pids if alive(pid)], "a child outlived the supervisor"
    assert took < 20, f"took {took:.1f}s"
