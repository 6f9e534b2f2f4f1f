"""The supervisor's HTTP endpoint: /metrics, /healthz and /readyz on one port.

Owns: a small threaded HTTP server in the supervisor process. /metrics aggregates the samples
of every process of the tree (prometheus_client multiprocess mode); /healthz answers whether
the supervisor loop is turning; /readyz whether the writer has the database open and a
decoder is pulling. Both answer 200 or 503 with a one-line reason, for Docker and Kubernetes.

Bounded (issues 12 and 25): the connections are served by one asyncio loop on one thread,
so a client that holds its connection costs a socket, not a thread; each request has an
overall deadline of REQUEST_TIMEOUT_S from its accept to its last byte written (a socket
timeout restarted on every byte, and 16 slow clients kept the probes out for good); past
MAX_CONNECTIONS open ones, a new connection is closed at once. /healthz and /readyz are
answered on the loop (their probes only read a snapshot); /metrics is rendered on one
worker thread, so scrapes never hold up a probe.

Never: touch the tree itself; it only calls the two probe functions it was given.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from supervisor.metrics_archive import ARCHIVE_LOCK
from supervisor.metrics_dir import SAMPLE_FILE

log = logging.getLogger(__name__)

Probe = Callable[[], tuple[bool, str]]

MAX_CONNECTIONS = 256  # open connections; each costs a socket and a small buffer
REQUEST_TIMEOUT_S = 5.0  # from accept to the last byte of the answer, whatever the client does
MAX_REQUEST_LINE_BYTES = 8 * 1024
MAX_HEADERS = 100
# prometheus_client's sample files start with a 4-byte length; a child that is creating its
# file right now has one of 0 bytes, which the stock collector fails to read (struct.error:
# the scrape got no answer at all). Seen during restarts under load.
MIN_SAMPLE_FILE_BYTES = 8
SCRAPE_ATTEMPTS = 3


class TolerantCollector(MultiProcessCollector):
    """The multiprocess collector, skipping sample files that are still being created.

    It keeps the folder itself rather than reading the base class's private `_path`, so
    that a prometheus_client release that renames it cannot break /metrics (issue 28)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.folder = os.environ["PROMETHEUS_MULTIPROC_DIR"]
        super().__init__(registry, path=self.folder)

    def collect(self):
        with ARCHIVE_LOCK:  # a dead child's samples are either in its files or the archive
            entries = os.scandir(self.folder)
            files = [
                entry.path
                for entry in entries
                if SAMPLE_FILE.fullmatch(entry.name)
                and entry.stat().st_size >= MIN_SAMPLE_FILE_BYTES
            ]
            return self.merge(files, accumulate=True)


def render_metrics(registry: CollectorRegistry) -> bytes:
    """The exposition text; a file caught mid-creation only costs a retry."""
    for attempt in range(SCRAPE_ATTEMPTS):
        try:
            return generate_latest(registry)
        except (struct.error, ValueError):
            if attempt == SCRAPE_ATTEMPTS - 1:
                raise
            time.sleep(0.01)
    raise AssertionError("unreachable")


class HTTPEndpoint:
    """The served port: an asyncio loop on a daemon thread. `shutdown` stops it."""

    def __init__(self, host: str, port: int, healthz: Probe, readyz: Probe) -> None:
        registry = CollectorRegistry()
        TolerantCollector(registry)
        self._probes = {"/healthz": healthz, "/readyz": readyz}
        self._render = lambda: render_metrics(registry)
        self._scrapes = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scrape")
        self._open = 0
        self._loop = asyncio.new_event_loop()
        # Bound here, on the caller's thread, so a taken port raises OSError to the caller.
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, host, port, limit=MAX_REQUEST_LINE_BYTES)
        )
        self.server_address = self._server.sockets[0].getsockname()
        self._thread = threading.Thread(target=self._loop.run_forever, name="http", daemon=True)
        self._thread.start()

    @property
    def open_connections(self) -> int:
        return self._open

    def shutdown(self) -> None:
        """Stop listening, drop the connections still open, end the thread."""
        if self._loop.is_running():
            closing = asyncio.run_coroutine_threadsafe(self._close(), self._loop)
            closing.result(timeout=5)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        self._scrapes.shutdown(wait=False, cancel_futures=True)

    async def _close(self) -> None:
        self._server.close()
        serving = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in serving:
            task.cancel()
        await asyncio.gather(*serving, return_exceptions=True)

    def server_close(self) -> None:
        if not self._loop.is_running() and not self._loop.is_closed():
            self._server.close()
            self._loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._open += 1
        answered = False
        try:
            if self._open <= MAX_CONNECTIONS:
                async with asyncio.timeout(REQUEST_TIMEOUT_S):
                    await self._answer(reader, writer)
                    writer.close()  # flushes what drain left in the buffer, then closes
                    await writer.wait_closed()
                    answered = True
        except (TimeoutError, ConnectionError, ValueError, EOFError, asyncio.LimitOverrunError):
            pass  # a slow, gone or garbled client: dropped, nothing to tell anyone
        finally:
            self._open -= 1
            if not answered:
                writer.transport.abort()  # closed now, without lingering for the client

    async def _respond(self, path: str) -> tuple[int, bytes, str]:
        """Status, body and content type of /metrics or a probe."""
        if path == "/metrics":
            body = await asyncio.get_running_loop().run_in_executor(self._scrapes, self._render)
            return 200, body, CONTENT_TYPE_LATEST
        ok, reason = self._probes[path]()
        return (200 if ok else 503), (reason + "\n").encode(), "text/plain"

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parts = (await reader.readuntil(b"\n")).split()
        for _ in range(MAX_HEADERS):
            if (await reader.readuntil(b"\n")).strip() == b"":
                break
        else:
            raise ValueError("too many headers")
        if len(parts) < 2 or parts[0] != b"GET":
            await _write(writer, 405, b"only GET\n", "text/plain")
            return
        path = parts[1].decode("latin-1").split("?", 1)[0]
        if path == "/metrics" or path in self._probes:
            try:
                status, body, content_type = await self._respond(path)
            except Exception as exc:
                # A bug in a probe or the scrape: say so and log it, rather than reset the
                # connection, which a probe or Prometheus reads as "the process is gone".
                log.exception("answering %s failed", path)
                status, body, content_type = 500, _one_line(exc), "text/plain"
            await _write(writer, status, body, content_type)
        else:
            await _write(writer, 404, b"not found: try /metrics, /healthz or /readyz\n",
                         "text/plain")  # fmt: skip


_STATUS_TEXT = {
    200: "OK", 404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error",
    503: "Unavailable",
}  # fmt: skip


def _one_line(exc: Exception) -> bytes:
    text = " ".join(f"internal error: {type(exc).__name__}: {exc}".split())
    return (text[:200] + "\n").encode("utf-8", "replace")


async def _write(writer: asyncio.StreamWriter, status: int, body: bytes, content_type: str) -> None:
    head = (
        f"HTTP/1.0 {status} {_STATUS_TEXT[status]}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    writer.write(head.encode("latin-1") + body)
    await writer.drain()


def start_http_server(host: str, port: int, healthz: Probe, readyz: Probe) -> HTTPEndpoint:
    """Serve in a daemon thread; raises OSError when the port is taken."""
    return HTTPEndpoint(host, port, healthz, readyz)
