"""The supervisor's HTTP endpoint: /metrics, /healthz and /readyz on one port.

Owns: a small threaded HTTP server in the supervisor process. /metrics aggregates the samples
of every process of the tree (prometheus_client multiprocess mode); /healthz answers whether
the supervisor loop is turning; /readyz whether the writer has the database open and a
decoder is pulling. Both answer 200 or 503 with a one-line reason, for Docker and Kubernetes.

Never: touch the tree itself; it only calls the two probe functions it was given.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

Probe = Callable[[], tuple[bool, str]]


def start_http_server(host: str, port: int, healthz: Probe, readyz: Probe) -> ThreadingHTTPServer:
    """Serve in a daemon thread; raises OSError when the port is taken."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._reply(200, generate_latest(registry), CONTENT_TYPE_LATEST)
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

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server
