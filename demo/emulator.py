"""Start and stop a local Google Pub/Sub emulator.

Owns: finding the emulator that the Google Cloud SDK installs, starting it on a port in its
own process group, waiting until it says it is listening, and stopping the whole group.
Used by the test suite, `miniscan demo` and the benchmarks.

Never: talk to Pub/Sub itself (that is `broker`), or leave the emulator's `java`
child running: the launcher is a shell script that starts `java`, so killing the script's
pid alone would orphan the JVM. We always signal the whole process group.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from contracts import defaults

LOOPBACK = "127.0.0.1"  # what the demo, the tests and the benchmarks start listens only here
READY_MARKER = "Server started, listening on"
INSTALL_HINT = (
    "the Pub/Sub emulator is not installed: install the Google Cloud SDK and run "
    "`gcloud components install pubsub-emulator beta` (Debian/Ubuntu: "
    "`apt-get install google-cloud-cli-pubsub-emulator`); Java 11+ is required"
)


class EmulatorError(RuntimeError):
    """The emulator could not be found or did not start."""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def find_emulator_command(host: str, port: int, project: str) -> list[str]:
    """The command line that starts the emulator, preferring the direct launcher.

    The launcher under the SDK root starts faster than `gcloud beta emulators pubsub start`,
    which first runs gcloud's own Python.
    """
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        raise EmulatorError(INSTALL_HINT)
    sdk_roots = [os.environ.get("CLOUDSDK_ROOT_DIR", ""), "/usr/lib/google-cloud-sdk"]
    sdk_roots.append(str(Path(os.path.realpath(gcloud)).parent.parent))
    for root in filter(None, sdk_roots):
        launcher = Path(root) / "platform" / "pubsub-emulator" / "bin" / "cloud-pubsub-emulator"
        if launcher.is_file() and os.access(launcher, os.X_OK):
            return [str(launcher), f"--host={host}", f"--port={port}"]
    return [
        gcloud, "beta", "emulators", "pubsub", "start",
        f"--project={project}", f"--host-port={host}:{port}",
    ]  # fmt: skip


@dataclass
class Emulator:
    """A running emulator; `host` is what PUBSUB_EMULATOR_HOST should be set to."""

    host: str
    process: subprocess.Popen
    log_path: Path
    _stopped: bool = field(default=False, repr=False)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the launcher and its `java` child: TERM the group, then KILL it."""
        if self._stopped:
            return
        self._stopped = True
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout=timeout)
                # The launcher may exit before java does: wait until the group is empty.
                if _wait_group_gone(self.process.pid, timeout):
                    break
            except subprocess.TimeoutExpired:
                continue
        self.process.wait()

    def __enter__(self) -> Emulator:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _wait_group_gone(pgid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def start_emulator(
    project: str = defaults.DEFAULT_PROJECT,
    host: str = LOOPBACK,
    port: int = 0,
    timeout: float = 90.0,
    log_dir: str | None = None,
) -> Emulator:
    """Start the emulator and return once it listens; raise EmulatorError otherwise."""
    port = port or free_port()
    command = find_emulator_command(host, port, project)
    with tempfile.NamedTemporaryFile(
        prefix="pubsub-emulator-", suffix=".log", dir=log_dir, delete=False
    ) as log_file:
        log_path = Path(log_file.name)
        process = subprocess.Popen(
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    emulator = Emulator(host=f"{host}:{port}", process=process, log_path=log_path)
    ready = threading.Event()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if READY_MARKER in log_path.read_text(errors="replace"):
            ready.set()
            break
        if process.poll() is not None:
            break
        time.sleep(0.1)
    if not ready.is_set():
        emulator.stop()
        tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
        raise EmulatorError(
            f"the Pub/Sub emulator did not start within {timeout:.0f}s: " + " | ".join(tail)
        )
    return emulator
