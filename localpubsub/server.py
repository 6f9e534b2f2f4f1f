"""The gRPC server of the local Pub/Sub: bind, serve both services, stop.

Owns: `LocalPubSub`, one server with its state: the thread pool, the channel options
(message sizes, keepalive), binding the port (0 picks a free one) and an orderly stop that
first releases every waiting pull. Tests can run it in-process; `localpubsub.cli` runs it
as a process.

Never: print, handle signals or touch the disk.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import grpc

from localpubsub.service import PublisherService, SubscriberService
from localpubsub.state import PubSubState

# Every waiting pull and every stream holds a thread for as long as it waits; with too few,
# an acknowledge would queue behind long polls. Threads are started only when needed.
MAX_THREADS = 256
MAX_MESSAGE_BYTES = 32 * 1024 * 1024  # above Pub/Sub's 10 MB requests and pull responses
OPTIONS = (
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    # gRPC lets a second server bind a port that one already uses (SO_REUSEPORT); a busy
    # port must be an error here, or two servers would split the clients between them.
    ("grpc.so_reuseport", 0),
    # Clients that send keepalive pings (Google's default channel does) are not cut off.
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 5000),
)
STOP_GRACE_S = 2.0


class LocalPubSub:
    """A started server; `port` is the one it listens on."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = PubSubState()
        self._server = grpc.server(
            ThreadPoolExecutor(max_workers=MAX_THREADS, thread_name_prefix="localpubsub"),
            options=OPTIONS,
        )
        self._server.add_generic_rpc_handlers(
            (PublisherService(self.state).handler(), SubscriberService(self.state).handler())
        )
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            self.port = self._server.add_insecure_port(address)
        except RuntimeError as exc:  # grpc's own words: "Failed to bind to address ..."
            raise OSError(f"cannot listen on {address}: {exc}") from None
        if self.port == 0:  # older grpc versions report a failed bind this way
            raise OSError(f"cannot listen on {address}")
        self._server.start()
        self.host = host

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Answer every waiting pull (empty) and end every stream, then stop serving."""
        self.state.close()
        self._server.stop(grace_s).wait()

    def __enter__(self) -> LocalPubSub:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
