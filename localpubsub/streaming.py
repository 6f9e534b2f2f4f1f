"""One StreamingPull call of the local Pub/Sub server: messages pushed down a stream.

Owns: `PullStream`, what a stream asked for in its first request (subscription, lease
length, outstanding limit in messages; the limit in bytes is left to the client, which
enforces it too), applying the acks, nacks and deadline changes that later requests carry,
and producing the responses. The client's requests are read on a thread of their own (gRPC
hands the server a blocking iterator), which ends the stream when they end.

Never: hold messages of its own (the leases are the subscription's, so a stream that breaks
leaves them to expire and be redelivered, as on Pub/Sub), or poll: the responses wait in
`PubSubState.pull`, which the reader wakes when the stream ends.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from itertools import groupby

import grpc

from localpubsub import protos
from localpubsub.names import ApiError, invalid
from localpubsub.state import PubSubState
from localpubsub.subscription_config import MAX_ACK_DEADLINE_S

DEFAULT_MAX_OUTSTANDING = 1000  # when the client names no limit (the Python client's default)


class PullStream:
    def __init__(self, state: PubSubState, first: protos.StreamingPullRequest) -> None:
        self.state = state
        self.subscription = first.subscription
        # Refuse a missing subscription at once, not at the first message.
        self.lease_s = state.get_subscription(self.subscription).ack_deadline_seconds
        self.limit = first.max_outstanding_messages or DEFAULT_MAX_OUTSTANDING
        self.outstanding: set[int] = set()  # ack numbers sent down this stream, maybe unacked
        self.ended = False
        self.error: ApiError | None = None
        self.apply(first)

    def apply(self, request: protos.StreamingPullRequest) -> None:
        """What a request carries besides its first-request fields: acks, deadline changes."""
        if request.stream_ack_deadline_seconds:
            if not 0 < request.stream_ack_deadline_seconds <= MAX_ACK_DEADLINE_S:
                raise invalid("stream_ack_deadline_seconds out of bounds")
            self.lease_s = request.stream_ack_deadline_seconds
        if request.ack_ids:
            self.state.acknowledge(self.subscription, request.ack_ids)
        ack_ids, seconds = request.modify_deadline_ack_ids, request.modify_deadline_seconds
        if len(ack_ids) != len(seconds):
            raise invalid("modify_deadline_seconds and modify_deadline_ack_ids differ in length")
        pairs = sorted(zip(seconds, ack_ids, strict=True))
        for deadline, group in groupby(pairs, key=lambda pair: pair[0]):
            ids = [ack_id for _, ack_id in group]
            self.state.modify_ack_deadline(self.subscription, ids, deadline)

    def read(self, requests: Iterator[protos.StreamingPullRequest]) -> None:
        """Apply every later request until the client stops sending; then end the stream."""
        try:
            for request in requests:
                self.apply(request)
        except ApiError as exc:
            self.error = exc
        except (grpc.RpcError, ValueError):
            pass  # the call was cancelled or broke: the stream is over either way
        finally:
            self.end()

    def end(self) -> None:
        self.ended = True
        self.state.wake(self.subscription)

    def responses(
        self, requests: Iterator[protos.StreamingPullRequest], context: grpc.ServicerContext
    ) -> Iterator[protos.StreamingPullResponse]:
        reader = threading.Thread(
            target=self.read, args=(requests,), name="localpubsub-stream-reader", daemon=True
        )
        reader.start()
        context.add_callback(self.end)
        while not self.ended:
            taken = self.state.pull(
                self.subscription, self.limit, math.inf, lease_s=self.lease_s,
                stopped=lambda: self.ended, outstanding=self.outstanding,
            )  # fmt: skip
            if taken:
                response = protos.StreamingPullResponse()
                for ack_id, message in taken:
                    response.received_messages.add(ack_id=ack_id, message=message)
                yield response
            elif self.state.closed:
                # Clients reconnect on UNAVAILABLE, as they do when Google's emulator stops.
                raise ApiError(grpc.StatusCode.UNAVAILABLE, "The server is shutting down")
        if self.error is not None:
            raise self.error
