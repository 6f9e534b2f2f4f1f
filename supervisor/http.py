"""The supervisor's HTTP endpoint: /metrics, /healthz and /readyz on one port.

Owns: a small threaded HTTP server in the supervisor process. /metrics aggregates the samples
of every process of the tree (prometheus_client multiprocess mode); /healthz answers whether
the supervisor loop is turning; /readyz whether the writer has the database open and a
decoder is pulling. Both answer 200 or 503 with a one-line reason, for Docker and Kubernetes.

Bounded (issue 12): at most MAX_CONNECTIONS requests are served at once, each on its own
thread, and a client that sends nothing for REQUEST_TIMEOUT_S is dropped; one more connection
is closed at once instead of starting a thread, so a burst of scrapers or a slowloris cannot
pile up threads in the supervisor.

Never: touch the tree itself; it only calls the two probe functions it was given.
"""

from __future__ import annotations

import os
import struct
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from supervisor.metrics_dir import SAMPLE_FILE

Probe = Callable[[], tuple[bool, str]]

MAX_CONNECTIONS = 16
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
        entries = os.scandir(self.folder)
        files = [
            entry.path
            for entry in entries
            if SAMPLE_FILE.fullmatch(entry.name) and entry.stat().st_size >= MIN_SAMPLE_FILE_BYTES
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
REQUEST_TIMEOUT_S = 5.0


class BoundedHTTPServer(ThreadingHTTPServer):
    """A thread per request, but never more than MAX_CONNECTIONS of them."""

    daemon_threads = True

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request, client_address) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # full: close now rather than queue a thread
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def start_http_server(host: str, port: int, healthz: Probe, readyz: Probe) -> ThreadingHTTPServer:
    """Serve in a daemon thread; raises OSError when the port is taken."""
    registry = CollectorRegistry()
    TolerantCollector(registry)

    class Handler(BaseHTTPRequestHandler):
        timeout = REQUEST_TIMEOUT_S  # a socket timeout for reading the request

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._reply(200, render_metrics(registry), CONTENT_TYPE_LATEST)
            elif path in ("/healthz", "/readyz"):
                ok, reason = (healthz if path == "/healthz" else readyz)()
                self._reply(200 if ok else 503, (reason + "\n").encode(), "text/plain")
            else:
                self._reply(404, b"not found: try /metrics, /healthz or /readyz\n", "text/plain")

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass  # scrapes every few seconds would drown the log

    server = BoundedHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server
