"""A TCP proxy on loopback that injects network faults between miniscan and Pub/Sub.

Owns: forwarding bytes between clients and one upstream (the emulator), and three states an
operator meets in production: `passing` (a healthy network), `cut` (every open connection is
reset and new ones are refused, like a broker restart or a dropped route) and `blackhole`
(connections are accepted and bytes are swallowed, nothing is answered, like a hung load
balancer). Tests switch states while traffic flows.

Never: reach anything but the upstream it was given on 127.0.0.1, or outlive `close()`.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading

PASSING, CUT, BLACKHOLE = "passing", "cut", "blackhole"


def reset(sock: socket.socket) -> None:
    """Close with an RST rather than a FIN, as a crashed peer or a firewall does."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.close()


class FaultProxy:
    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.state = PASSING
        self.connections_reset = 0
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self.host = f"127.0.0.1:{self.port}"
        self._closed = threading.Event()
        self._acceptor = threading.Thread(target=self._accept_loop, name="proxy", daemon=True)
        self._acceptor.start()

    # --- the states -------------------------------------------------------------------------

    def cut(self) -> None:
        """Reset every open connection and refuse new ones until `restore()`."""
        with self._lock:
            self.state = CUT
            doomed, self._open = self._open, set()
        for sock in doomed:
            reset(sock)
            self.connections_reset += 1

    def blackhole(self) -> None:
        """Keep connections open but forward and answer nothing until `restore()`."""
        with self._lock:
            self.state = BLACKHOLE

    def restore(self) -> None:
        with self._lock:
            previous, self.state = self.state, PASSING
            doomed = self._open if previous == BLACKHOLE else set()
            if doomed:
                self._open = set()
        # After a blackhole the swallowed bytes leave every open stream corrupt: reset them,
        # as a peer that notices the gap would, so clients reconnect cleanly.
        for sock in doomed:
            reset(sock)

    def close(self) -> None:
        self._closed.set()
        self._acceptor.join(2)
        self._listener.close()
        with self._lock:
            doomed, self._open = self._open, set()
        for sock in doomed:
            reset(sock)

    # --- forwarding -------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                state = self.state
            if state == CUT:
                reset(client)
                continue
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            reset(client)
            return
        upstream.settimeout(None)
        with self._lock:
            self._open.update((client, upstream))
        for source, sink in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if self.state == PASSING:
                    sink.sendall(data)
                # BLACKHOLE: swallow; CUT: the sockets are reset under us
        except OSError:
            pass
        finally:
            with self._lock:
                was_open = source in self._open
                self._open.discard(source)
                self._open.discard(sink)
            if was_open:
                reset(sink)
                reset(source)
