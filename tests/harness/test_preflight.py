"""`make test` never passes by skipping: a missing part stops it with one line, and a machine
without the Cloud SDK runs the Pub/Sub tests on the built-in server instead (issue 16)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_pytest(
    tmp_path: Path, require: bool, server: str | None = None
) -> subprocess.CompletedProcess[str]:
    empty_path = tmp_path / "bin"  # a PATH without gcloud, promtool or docker-compose
    empty_path.mkdir()
    env = {**os.environ, "PATH": str(empty_path)}
    for name in ("MINISCAN_REQUIRE_EMULATOR", "MINISCAN_PUBSUB_SERVER", "PUBSUB_EMULATOR_HOST"):
        env.pop(name, None)
    if require:
        env["MINISCAN_REQUIRE_EMULATOR"] = "1"
    if server is not None:
        env["MINISCAN_PUBSUB_SERVER"] = server
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
         "tests/pubsub/test_broker_subscription.py"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_required_run_without_the_cloud_sdk_uses_the_builtin_server(tmp_path):
    result = run_pytest(tmp_path, require=True)
    assert "pubsub server: the built-in Pub/Sub server" in result.stdout
    # It still stops, for the tools that are missing, but not for the Pub/Sub server.
    assert result.returncode == 3, result.stdout[-2000:]
    assert "make test needs every real part: promtool is not on PATH" in result.stdout
    assert "apt-get install prometheus" in result.stdout
    assert "Pub/Sub emulator is not installed" not in result.stdout
    assert " passed" not in result.stdout


def test_required_run_without_googles_emulator_asked_for_by_name_stops(tmp_path):
    result = run_pytest(tmp_path, require=True, server="google")
    assert result.returncode == 3, result.stdout[-2000:]
    assert "make test needs every real part: the Pub/Sub emulator is not installed" in (
        result.stdout
    )
    assert " passed" not in result.stdout


def test_unrequired_run_without_the_cloud_sdk_runs_the_pubsub_tests_on_the_builtin_server(
    tmp_path,
):
    result = run_pytest(tmp_path, require=False)
    assert "pubsub server: the built-in Pub/Sub server" in result.stdout
    assert result.returncode == 0, result.stdout[-2000:]
    assert " passed" in result.stdout
    assert "SKIPPED" not in result.stdout and "failed" not in result.stdout


def test_unrequired_run_without_googles_emulator_asked_for_says_so_and_skips_loudly(tmp_path):
    result = run_pytest(tmp_path, require=False, server="google")
    assert "pubsub server: the Pub/Sub emulator is not installed" in result.stdout
    assert "SKIPPED" in result.stdout  # -ra lists every skip with its reason
