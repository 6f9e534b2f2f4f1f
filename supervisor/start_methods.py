"""How each kind of child is started: a fresh interpreter for the writer, a fork of a
server that already imported the Pub/Sub client for each decoder.

Owns: `child_contexts`, the multiprocessing contexts the supervisor starts its children
with. The writer is spawned (a fresh interpreter that imports only the store). Decoders come
from multiprocessing's forkserver, told to import `workers.decoder_process` (and with it
gRPC, protobuf and the Pub/Sub client) once, before it forks anything.

Why (issue 13, measured on 2 cores, bench/RESULTS.md): under `spawn` every decoder imported
the client itself, 0.4 s of CPU and ~40 MiB of private memory each, so `--workers 8` took
2.2 s to its first committed row and 387 MiB of PSS. Forked from the server, a decoder is up
in milliseconds and shares the imported modules' pages with its siblings.

Why `supervisor.cli` too (measured with `bench/e2e.py`, RESULTS "Issue 13, third pass"):
multiprocessing re-runs the parent's main script in every child it starts (its main-module
fix-up), and the supervisor's script is `miniscan-supervisor`, whose one import is
`supervisor.cli` and, with it, click: 14 ms of CPU in every decoder, paid again on every
restart, and at `--workers 8` mostly after the tree reported ready, i.e. during the first
second of work. Imported once in the server, the re-run finds it loaded. (Preloading
`__main__`, which multiprocessing offers for this, does nothing on Python 3.11: the
forkserver never receives the main path it needs.)

Why this is safe: the server only imports; it opens no gRPC channel and starts no thread,
which is the fork gRPC supports (each decoder creates its channel after the fork, as
`broker.subscription` requires). The server is started (or restarted, should it have
died) before each decoder's `Process.start()`, inside `supervisor.spawning`'s window with
SIGINT and SIGTERM blocked: it inherits that mask, never unblocks them, and every decoder
it forks starts with them blocked until `supervisor.children` installed its handlers, as a
spawned child does. A decoder's entry point is the same module-level function either way.

Why the server is started here, with the supervisor's import path in its environment
(`ensure_server_running`): Python before 3.12.8 and 3.13.1 hands the server the parent's
`sys.path` and then ignores it (CPython gh-117378), so the server imported its preloads
from its own path, which starts with the working directory. Run from a folder that holds a
`workers`, `store` or `supervisor` package of its own (another miniscan checkout, a user's
project), the server imported that one, and every decoder forked from it ran that code
while the supervisor and the writer ran miniscan's: found when a benchmark run from one
checkout timed another's decoders (bench/RESULTS.md, "fourth pass"). The server now gets
the supervisor's path as PYTHONPATH and no working directory in front (PYTHONSAFEPATH), the
workaround CPython's fix names; both are set only while the server starts.

Why the server starts before the start-up check (`start_decoder_server`), and preloads
`supervisor.subscription_check` (bench/RESULTS.md, "Start-up after the restructuring"):
the check ran in a spawned interpreter of its own, which imported the Pub/Sub client
(0.45-0.65 s of CPU) to make one call, in series before the writer and this server could
start; the server then imported the client again. Each of those interpreters had also
grown by 20-70 ms of imports since 3b16fd5, which is what made the start slower. Now the
server imports the client once, on the other CPU while the supervisor imports the tree,
and the check is a fork of it that only makes its call: start to /readyz at `--workers 8`
went from a median of 1.49-2.24 s to 1.01-1.45 s (2 busy cores, alternating runs).

Never: preload anything that connects, starts threads or reads configuration at import.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
from collections.abc import Iterator
from multiprocessing import forkserver
from multiprocessing.context import BaseContext

from supervisor.spawning import stop_signals_blocked

DECODER_PRELOAD = ["supervisor.cli", "workers.decoder_process", "supervisor.subscription_check"]


def child_contexts(given: BaseContext | None) -> tuple[BaseContext, BaseContext]:
    """(writer's context, decoders' context): `given` for both when a caller chose one (the
    in-process tests pass `spawn`), else spawn and the preloading forkserver."""
    if given is not None:
        return given, given
    forkserver = multiprocessing.get_context("forkserver")
    forkserver.set_forkserver_preload(DECODER_PRELOAD)
    return multiprocessing.get_context("spawn"), forkserver


def start_decoder_server() -> BaseContext:
    """The decoders' context, its server started now, with the stop signals blocked: the
    start-up check forks from it, and so do the decoders later."""
    _, decoders = child_contexts(None)
    with stop_signals_blocked():
        ensure_server_running(decoders)
    return decoders


def ensure_server_running(context: BaseContext) -> None:
    """Before a child of `context` starts: if it forks from the server, the server is
    running and imported its preloads from the supervisor's path. Call it with stop signals
    blocked, as the server must inherit that mask (`supervisor.spawning`)."""
    if context.get_start_method() != "forkserver":
        return
    with _environment(
        PYTHONPATH=os.pathsep.join(path or os.getcwd() for path in sys.path),
        PYTHONSAFEPATH="1",
    ):
        forkserver.ensure_running()


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    """Set these environment variables for the block, then put back what was there."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
