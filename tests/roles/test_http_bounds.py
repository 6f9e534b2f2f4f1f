"""The supervisor's HTTP server stays bounded: idle clients are dropped, extra ones refused."""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request

from supervisor import http
from testkit.waiting import wait_until


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


def drip(port: int, request: bytes, every_s: float, stop: threading.Event,
         connected: list | None = None) -> float | None:  # fmt: skip
    """Send `request` a byte at a time every `every_s`; the seconds until the server closed
    the connection, or None if it never did before `stop` was set."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        if connected is not None:
            connected.append(sock)
        for byte in request:
            if stop.wait(every_s):
                return None
            try:
                sock.sendall(bytes([byte]))
            except OSError:  # reset by the server
                return time.monotonic() - started
            sock.settimeout(0.001)
            try:
                if sock.recv(1) == b"":
                    return time.monotonic() - started
            except TimeoutError:
                pass
            except OSError:
                return time.monotonic() - started
    return None


def test_a_client_sending_a_byte_at_a_time_is_dropped_at_the_request_deadline(
    monkeypatch, tmp_path
):
    """The deadline covers the whole request: a per-read timeout restarted on every byte
    let a client hold its connection for as long as it kept dripping (issue 25)."""
    server, port = serve(monkeypatch, tmp_path, max_connections=4, timeout_s=1.0)
    stop = threading.Event()
    try:
        request = b"GET /healthz HTTP/1.1\r\n" + b"X-Slow: " + b"a" * 200 + b"\r\n\r\n"
        dropped_after = drip(port, request, every_s=0.1, stop=stop)
        assert dropped_after is not None and dropped_after < 3.0
    finally:
        stop.set()
        server.shutdown()
        server.server_close()


def test_healthz_answers_within_a_second_while_100_slow_clients_hold_connections(
    monkeypatch, tmp_path
):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    server = http.start_http_server("127.0.0.1", 0, ok, ok)
    port = server.server_address[1]
    stop = threading.Event()
    connected: list = []
    request = b"GET /metrics HTTP/1.1\r\n\r\n"
    slow = [
        threading.Thread(target=drip, args=(port, request, 1.0, stop, connected))
        for _ in range(100)
    ]
    try:
        for client in slow:
            client.start()
        wait_until(lambda: len(connected) == 100, 10, "100 slow clients connected")
        for _ in range(5):
            started = time.monotonic()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as answer:
                assert answer.status == 200 and answer.read() == b"ok\n"
            assert time.monotonic() - started < 1.0
        assert all(client.is_alive() for client in slow)  # the slow ones still hold theirs
    finally:
        stop.set()
        for client in slow:
            client.join(timeout=5)
        server.shutdown()
        server.server_close()


def test_a_failing_probe_or_scrape_answers_500_with_one_line(monkeypatch, tmp_path, caplog):
    def broken() -> tuple[bool, str]:
        raise KeyError("no such child")

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    server = http.start_http_server("127.0.0.1", 0, ok, broken)
    port = server.server_address[1]

    def render_fails(registry):
        raise RuntimeError("Read beyond file size detected")

    try:
        for path in ("/readyz", "/metrics"):
            if path == "/metrics":
                monkeypatch.setattr(http, "render_metrics", render_fails)
            try:
                get(port, path)
                raise AssertionError(f"{path} answered 200")
            except urllib.error.HTTPError as answer:
                assert answer.code == 500
                body = answer.read()
            assert body.startswith(b"internal error: ") and body.count(b"\n") == 1
        assert get(port) == b"ok\n"  # the server goes on
        assert "answering /readyz failed" in caplog.text
        assert "answering /metrics failed" in caplog.text
    finally:
        server.shutdown()
        server.server_close()
