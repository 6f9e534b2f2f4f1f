"""Start and stop a local Pub/Sub server: Google's emulator, or the built-in one.

Owns: choosing the server (Google's Pub/Sub emulator from the Cloud SDK when it is installed,
else the built-in `localpubsub`; MINISCAN_PUBSUB_SERVER=google|builtin forces either),
starting it on a port in its own process group, waiting until it says it is listening (both
print Google's ready line), stopping the whole group, and pointing this process's own
Pub/Sub clients at it for a while (`emulator_env`). Used by the test suite, `miniscan
demo` and the benchmarks; `Emulator.kind` says which server runs.

Never: talk to Pub/Sub itself (that is `broker`), fall back silently from a server that was
asked for by name, or leave the emulator's `java` child running: Google's launcher is a
shell script that starts `java`, so killing the script's pid alone would orphan the JVM. We
always signal the whole process group.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from contracts import defaults
from localpubsub.cli import READY_MARKER

LOOPBACK = "127.0.0.1"  # what the demo, the tests and the benchmarks start listens only here
SERVER_ENV = "MINISCAN_PUBSUB_SERVER"
GOOGLE = "google"  # the Cloud SDK's emulator: the reference wherever it is installed
BUILTIN = "builtin"  # localpubsub: needs nothing but this Python
KINDS = (GOOGLE, BUILTIN)
DESCRIPTIONS = {GOOGLE: "Google's Pub/Sub emulator", BUILTIN: "the built-in Pub/Sub server"}
_READY_LINE = re.compile(re.escape(READY_MARKER) + r" (\d+)")
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


def choose_server(kind: str | None = None) -> str:
    """GOOGLE or BUILTIN: `kind`, else MINISCAN_PUBSUB_SERVER, else Google's emulator when
    its launcher is installed and the built-in server when it is not."""
    wanted = (kind or os.environ.get(SERVER_ENV) or "").strip().lower()
    if wanted in KINDS:
        return wanted
    if wanted:
        raise EmulatorError(f"{SERVER_ENV}={wanted}: expected {' or '.join(KINDS)}")
    # Only the emulator's own launcher counts: gcloud alone (without the component) would
    # fail to start it, where the built-in server would have run.
    return GOOGLE if google_launcher() is not None else BUILTIN


def google_launcher() -> Path | None:
    """The Cloud SDK's direct emulator launcher, when installed; it starts faster than
    `gcloud beta emulators pubsub start`, which first runs gcloud's own Python."""
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        return None
    sdk_roots = [os.environ.get("CLOUDSDK_ROOT_DIR", ""), "/usr/lib/google-cloud-sdk"]
    sdk_roots.append(str(Path(os.path.realpath(gcloud)).parent.parent))
    for root in filter(None, sdk_roots):
        launcher = Path(root) / "platform" / "pubsub-emulator" / "bin" / "cloud-pubsub-emulator"
        if launcher.is_file() and os.access(launcher, os.X_OK):
            return launcher
    return None


def find_emulator_command(host: str, port: int, project: str, kind: str | None = None) -> list[str]:
    """The command line that starts the server `choose_server(kind)` picks; EmulatorError
    when Google's emulator is asked for and not installed."""
    if choose_server(kind) == BUILTIN:
        # This interpreter, not a script on PATH: the server must run with the same
        # packages as the caller, wherever PATH points.
        return [sys.executable, "-m", "localpubsub", f"--host={host}", f"--port={port}"]
    launcher = google_launcher()
    if launcher is not None:
        return [str(launcher), f"--host={host}", f"--port={port}"]
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        raise EmulatorError(INSTALL_HINT)
    return [
        gcloud, "beta", "emulators", "pubsub", "start",
        f"--project={project}", f"--host-port={host}:{port}",
    ]  # fmt: skip


@dataclass
class Emulator:
    """A running emulator; `host` is what PUBSUB_EMULATOR_HOST should be set to, `kind`
    which server it is (GOOGLE or BUILTIN)."""

    host: str
    process: subprocess.Popen
    log_path: Path
    kind: str = GOOGLE
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


@contextmanager
def emulator_env(host: str) -> Iterator[None]:
    """PUBSUB_EMULATOR_HOST for this process's own clients, restored afterwards."""
    previous = os.environ.get("PUBSUB_EMULATOR_HOST")
    os.environ["PUBSUB_EMULATOR_HOST"] = host
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("PUBSUB_EMULATOR_HOST", None)
        else:
            os.environ["PUBSUB_EMULATOR_HOST"] = previous


def start_emulator(
    project: str = defaults.DEFAULT_PROJECT,
    host: str = LOOPBACK,
    port: int = 0,
    timeout: float = 90.0,
    log_dir: str | None = None,
    kind: str | None = None,
) -> Emulator:
    """Start the server `choose_server(kind)` picks and return once it listens; raise
    EmulatorError otherwise."""
    kind = choose_server(kind)
    if not port and kind == GOOGLE:
        port = free_port()  # the built-in server binds 0 itself and says which port it got
    command = find_emulator_command(host, port, project, kind)
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
    emulator = Emulator(host=f"{host}:{port}", process=process, log_path=log_path, kind=kind)
    ready = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready = _READY_LINE.search(log_path.read_text(errors="replace"))
        if ready is not None or process.poll() is not None:
            break
        time.sleep(0.1)
    if ready is not None:
        emulator.host = f"{host}:{ready.group(1)}"
    else:
        emulator.stop()
        tail = log_path.read_text(errors="replace").strip().splitlines()[-5:]
        raise EmulatorError(
            f"{DESCRIPTIONS[kind]} did not start within {timeout:.0f}s: " + " | ".join(tail)
        )
    return emulator
