"""The supervisor's HTTP server stays bounded: idle clients are dropped, extra ones refused."""

from __future__ import annotations

import socket
import threading
import urllib.request

from supervisor import http


def ok() -> tuple[bool, str]:
    return True, "ok"


def serve(monkeypatch, tmp_path, max_connections: int, timeout_s: float):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setattr(http, "MAX_CONNECTIONS", max_connections)
    monkeypatch.setattr(http, "REQUEST_TIMEOUT_S", timeout_s)
    server = http.start_http_server("127.0.0.1", 0, ok, ok)
    return server, server.server_address[1]


def get(port: int, path: str = "/healthz") -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        return response.read()


def test_connections_beyond_the_limit_are_closed_and_idle_ones_time_out(monkeypatch, tmp_path):
    server, port = serve(monkeypatch, tmp_path, max_connections=2, timeout_s=1.0)
    try:
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
        extra = socket.create_connection(("127.0.0.1", port))
        extra.settimeout(5)
        assert extra.recv(1) == b""  # closed by the server without an answer
        assert threading.active_count() < 10
        for sock in idle:  # the idle clients are dropped after the request timeout
            sock.settimeout(5)
            assert sock.recv(1) == b""
            sock.close()
        assert get(port) == b"ok\n"  # and the slots are free again
    finally:
        server.shutdown()
        server.server_close()


def test_a_sample_file_still_being_created_does_not_break_the_scrape(monkeypatch, tmp_path):
    """A child that is creating its sample file has one of 0 bytes for a moment; the stock
    collector raised struct.error on it and the scrape got no answer."""
    server, port = serve(monkeypatch, tmp_path, max_connections=4, timeout_s=5.0)
    try:
        (tmp_path / "counter_424242.db").write_bytes(b"")
        (tmp_path / "gauge_livesum_424243.db").write_bytes(b"")
        assert get(port, "/metrics") is not None  # 200, not a dropped connection
    finally:
        server.shutdown()
        server.server_close()
