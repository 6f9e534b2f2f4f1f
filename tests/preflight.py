"""Say what the suite runs against, and stop at once when `make test` lacks a real part.

Loaded by pytest before collection (`-p preflight` in pyproject.toml). The header names the
Pub/Sub server the emulator tests will use (Google's emulator where it is installed, else the
built-in one; MINISCAN_PUBSUB_SERVER=google|builtin forces either) and the tools the ops and
compose tests need. With MINISCAN_REQUIRE_EMULATOR=1 (set by `make test` and `.ci/run`) a
selected test whose real part is missing ends the run before anything runs, with one line
saying what to install: the whole suite never passes by skipping. A machine without the
Cloud SDK is not missing a part: the built-in server runs the Pub/Sub tests there; only
Google's emulator asked for by name and absent is. `make test-unit` runs the tests that
need nothing but Python.
"""

from __future__ import annotations

import os
import shutil

import pytest

from testkit.emulator import (
    BUILTIN,
    DESCRIPTIONS,
    SERVER_ENV,
    EmulatorError,
    choose_server,
    find_emulator_command,
)

REQUIRE_ENV = "MINISCAN_REQUIRE_EMULATOR"
TOOLS = {
    "promtool": "apt-get install prometheus",
    "docker-compose": "apt-get install docker-compose",
}


def pubsub_server() -> tuple[str | None, str]:
    """(launcher, what to say) for the Pub/Sub server the emulator tests start."""
    try:
        kind = choose_server()
        command = find_emulator_command("127.0.0.1", 0, "test-project", kind)
    except EmulatorError as exc:
        return None, str(exc)
    if kind != BUILTIN:
        return command[0], f"{DESCRIPTIONS[kind]} ({command[0]})"
    why = f"{SERVER_ENV}={BUILTIN}" if os.environ.get(SERVER_ENV) else "no Cloud SDK emulator here"
    return command[0], f"{DESCRIPTIONS[kind]}, localpubsub ({why})"


def pytest_report_header(config: pytest.Config) -> list[str]:
    _, said = pubsub_server()
    tools = ", ".join(f"{name} {'found' if shutil.which(name) else 'MISSING'}" for name in TOOLS)
    required = os.environ.get(REQUIRE_ENV) == "1"
    return [
        f"pubsub server: {said}",
        f"tools: {tools}",
        f"missing parts: {'fail the run' if required else 'skip their tests (make test-unit)'}",
    ]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get(REQUIRE_ENV) != "1":
        return
    missing = []
    if any(item.get_closest_marker("emulator") for item in items):
        launcher, said = pubsub_server()
        if launcher is None:
            missing.append(said)
    missing += [
        f"{name} is not on PATH (Debian: {install})"
        for name, install in TOOLS.items()
        if shutil.which(name) is None
    ]
    if missing:
        pytest.exit(
            "make test needs every real part: " + "; ".join(missing)
            + " (or run `make test-unit` for the tests that need nothing but Python)",
            returncode=3,
        )
