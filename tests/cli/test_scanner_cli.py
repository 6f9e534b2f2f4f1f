"""The scanner commands' failure paths, none of which needs Pub/Sub: bad flags, an
unreachable broker, no credentials. Each must be a one-line error, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from scanner import cli
from testkit.emulator import free_port

SCANNER_SCRIPT = Path(sys.executable).with_name("miniscan-scanner")


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("Error:")]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--ips", "1.1.1.0/33"], "Invalid value for '--ips': '1.1.1.0/33' is not a CIDR"),
        (["--ips", "banana"], "'banana' is not a CIDR like 1.1.1.0/24"),
        (["--rate", "-5"], "Invalid value for '--rate': -5.0 is not in the range x>=0"),
        (["--count", "-1"], "Invalid value for '--count': -1 is not in the range x>=0"),
        (["--from-file", "/no/such/scans.jsonl"], "'/no/such/scans.jsonl' does not exist"),
        (["--from-file", "-", "--seed", "3"], "--seed cannot be used with --from-file"),
        (["--from-file", "-", "--ips", "10.0.0.0/8"], "--ips cannot be used with --from-file"),
        (["--from-file", "-", "--ports", "any"], "--ports cannot be used with --from-file"),
        (["--ports", "random"], "Invalid value for '--ports'"),
        (["--connect-timeout", "0"], "Invalid value for '--connect-timeout'"),
    ],
)
def test_bad_flags_are_one_line_usage_errors(args, expected):
    result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)
    errors = error_lines(result.stderr)
    assert len(errors) == 1
    assert expected in errors[0]
    assert "Traceback" not in result.output


def test_unreachable_pubsub_is_one_line_and_exit_3_within_the_connect_timeout():
    assert SCANNER_SCRIPT.exists(), "install the package: pip install -e '.[dev]'"
    env = {**os.environ, "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{free_port()}"}
    started = time.monotonic()
    result = subprocess.run(
        [str(SCANNER_SCRIPT), "--connect-timeout", "1", "--count", "5"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: Pub/Sub at 127.0.0.1:")
    assert "did not answer" in lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert elapsed < 20


def test_no_emulator_and_no_credentials_says_how_to_fix_it():
    env = {
        "PUBSUB_EMULATOR_HOST": None,
        "GOOGLE_APPLICATION_CREDENTIALS": "/nonexistent/credentials.json",
    }
    result = CliRunner().invoke(cli.main, ["--count", "1"], env=env)
    assert result.exit_code == 3
    assert result.stderr.count("\n") == 1
    assert "no Google Cloud credentials found: set PUBSUB_EMULATOR_HOST" in result.stderr
