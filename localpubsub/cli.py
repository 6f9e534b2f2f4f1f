"""`miniscan emulator` (and `python -m localpubsub`): run the local Pub/Sub server until told
to stop.

Owns: the options (Google's launcher's `--host` and `--port`), the ready line Google's
emulator prints (`Server started, listening on N`, with the real port when 0 was asked for:
launchers wait for it), and stopping on SIGTERM or SIGINT with exit code 0. Exit codes
(`contracts.exit_codes`): 0 stopped by a signal; 3 the port could not be bound (one line:
the port is tried before gRPC binds it, whose own error line would come first); 2 bad usage.

Never: serve anything itself (`localpubsub.server` does) or act inside a signal handler:
`contracts.signal_relay` turns the signal into an Event set from a relay thread, and the
main thread, waiting on that Event, does the stopping. No lock is taken in a handler and no
signal can slip in between a check and a wait.
"""

from __future__ import annotations

import socket
import sys
import threading

import click

from contracts.console import CouldNotStart
from contracts.signal_relay import stop_signals_set
from localpubsub.server import LocalPubSub

# The line Google's emulator logs once it serves; testkit.emulator and other tools wait for it.
READY_MARKER = "Server started, listening on"


def bind_problem(host: str, port: int) -> str | None:
    """Why `host:port` cannot be listened on, tried with a socket of our own first: gRPC's
    C core logs its own line to stderr before it returns a bind failure (issue 28), so a
    busy port is told here, once. SO_REUSEADDR as gRPC sets it: a port held only by
    connections in TIME_WAIT is free to both."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    return None


@click.command("emulator", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8085,
    show_default=True,
    help="Port to listen on (Google's emulator's default); 0 picks a free one.",
)
def emulator(host: str, port: int) -> None:
    """Run the built-in local Pub/Sub server (no Java, no Cloud SDK, nothing on disk) until
    SIGTERM or Ctrl-C. Point clients at it with PUBSUB_EMULATOR_HOST=HOST:PORT."""
    problem = bind_problem(host, port)
    if problem:
        raise CouldNotStart(problem)
    stop = threading.Event()
    with stop_signals_set(stop):
        try:
            server = LocalPubSub(host, port)
        except OSError as exc:
            raise CouldNotStart(str(exc)) from None
        click.echo(f"{READY_MARKER} {server.port}")
        sys.stdout.flush()
        try:
            stop.wait()
        finally:
            server.stop()
        click.echo("Server stopped")


def main() -> None:
    emulator(prog_name="python -m localpubsub")
