"""`make test` never passes by skipping: without the emulator it stops with one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_pytest(tmp_path: Path, require: bool) -> subprocess.CompletedProcess[str]:
    empty_path = tmp_path / "bin"  # a PATH without gcloud, promtool or docker-compose
    empty_path.mkdir()
    env = {**os.environ, "PATH": str(empty_path)}
    env.pop("MINISCAN_REQUIRE_EMULATOR", None)
    if require:
        env["MINISCAN_REQUIRE_EMULATOR"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
         "tests/test_broker_subscription.py"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_required_run_without_the_emulator_stops_with_what_to_install(tmp_path):
    result = run_pytest(tmp_path, require=True)
    assert result.returncode == 3, result.stdout[-2000:]
    assert "make test needs every real part: the Pub/Sub emulator is not installed" in (
        result.stdout
    )
    assert "apt-get install prometheus" in result.stdout
    assert " passed" not in result.stdout


def test_unrequired_run_says_which_server_and_skips_loudly(tmp_path):
    result = run_pytest(tmp_path, require=False)
    assert "pubsub server: the Pub/Sub emulator is not installed" in result.stdout
    assert "SKIPPED" in result.stdout  # -ra lists every skip with its reason
