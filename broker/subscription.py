"""Subscriber-side Pub/Sub calls: pull, acknowledge, nack and lease extension.

Owns: the one SubscriberClient of a decoder process and every call it makes, each with a
bounded timeout, chunked to stay under Pub/Sub's request limits. We use unary `pull` rather
than the streaming-pull callback API: measured on this machine against the emulator, unary
pull + acknowledge moved 9,000-19,700 messages/s in one process, streaming pull with default
settings about 2,000/s; unary pull also lets miniscan own the leases of what it holds (issue 5).
The hot calls (pull, acknowledge, modifyAckDeadline) go straight to the gRPC stubs on the
client's own channel (same credentials, same routing header), with raw protobuf messages:
the library's wrapping (proto-plus requests and responses, its interceptor and retry
layers) cost 8.4 us a message against 5.6 this way (issue 13, bench/RESULTS.md).

Never: decode, touch SQLite, or decide when to ack; callers do that. Must be created inside
the process that uses it: gRPC channels do not survive fork().
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import NamedTuple

import grpc
from google.api_core import exceptions as gexc
from google.api_core import retry as gretry
from google.api_core.gapic_v1 import routing_header
from google.protobuf import empty_pb2
from google.pubsub_v1.types import pubsub as pubsub_types

from broker.client import PubSubUnavailable, bounded_retry, subscriber_client, unreachable_message
from contracts import metrics

# Pub/Sub rejects acknowledge/modifyAckDeadline requests over 512 KB; ack ids run up to a
# few hundred bytes on real Pub/Sub, so 1,000 ids a request stays well under it.
ACK_CHUNK = 1000
RPC_TIMEOUT_S = 30.0
_SERVICE = "/google.pubsub.v1.Subscriber/"
_PullRequest = pubsub_types.PullRequest.pb()
_PullResponse = pubsub_types.PullResponse.pb()
_AcknowledgeRequest = pubsub_types.AcknowledgeRequest.pb()
_ModifyAckDeadlineRequest = pubsub_types.ModifyAckDeadlineRequest.pb()
CONSUME = "pubsub.subscriptions.consume"
# Real Pub/Sub may answer a missing subscription with a refusal too: the message says both.
_NOT_PERMITTED = (
    "this account may not pull from {path}, or the subscription does not exist: it needs "
    "pubsub.subscriptions.consume (roles/pubsub.subscriber on the subscription)"
)


class SubscriptionMissing(PubSubUnavailable):
    """The subscription does not exist: a configuration error, not a transient one."""


class NotPermitted(PubSubUnavailable):
    """The account lacks a permission miniscan needs: a configuration error, not weather."""


class PubSubOutage(PubSubUnavailable):
    """A call failed for a transient reason (after its retries, if it had any): Pub/Sub or
    the path to it is having weather. Wait and call again; never a reason to crash."""


# The gRPC codes that are weather, not a verdict on the request (google-api-core's own
# publish retry uses the same set).
TRANSIENT_ERRORS = (
    gexc.ServiceUnavailable,
    gexc.DeadlineExceeded,
    gexc.InternalServerError,
    gexc.Aborted,
    gexc.ResourceExhausted,
    gexc.Unknown,
    gexc.Cancelled,
)


def transient_retry(deadline: float, on_error=None) -> gretry.Retry:
    """Capped, jittered exponential backoff (google-api-core's own generator) on transient
    codes, for at most `deadline` s."""
    return gretry.Retry(
        predicate=gretry.if_exception_type(*TRANSIENT_ERRORS),
        initial=0.2,
        maximum=5.0,
        multiplier=2.0,
        timeout=deadline,
        on_error=on_error,
    )


def count_error(call: str, exc: BaseException) -> None:
    code = getattr(exc, "grpc_status_code", None)
    metrics.PUBSUB_ERRORS.labels(call, code.name if code is not None else type(exc).__name__).inc()


class PulledMessage(NamedTuple):
    """The parts of a received message that miniscan uses (a tuple: one is built per
    message, and a frozen dataclass cost three times as much to build)."""

    ack_id: str
    data: bytes
    message_id: str
    publish_time: float  # unix seconds


class Subscription:
    """One subscription, seen from one process."""

    def __init__(self, project: str, subscription: str) -> None:
        self._client = subscriber_client()
        self.path = self._client.subscription_path(project, subscription)
        channel = self._client.transport.grpc_channel
        self._metadata = (routing_header.to_grpc_metadata((("subscription", self.path),)),)

        def stub(method: str, request_type, response_type):
            return channel.unary_unary(
                _SERVICE + method,
                request_serializer=request_type.SerializeToString,
                response_deserializer=response_type.FromString,
            )

        self._pull = stub("Pull", _PullRequest, _PullResponse)
        self._settle = {
            "acknowledge": stub("Acknowledge", _AcknowledgeRequest, empty_pb2.Empty),
            "modify_ack_deadline": stub(
                "ModifyAckDeadline", _ModifyAckDeadlineRequest, empty_pb2.Empty
            ),
        }

    def check(self, deadline: float = 15.0, confirm_consume: bool = True) -> None:
        """Raise SubscriptionMissing, NotPermitted or PubSubUnavailable unless the
        subscription answers. Where reading it is refused, `confirm_consume` asks whether
        this account may consume from it instead (the supervisor's start-up check, once);
        without it a refused read passes (every decoder's open, on every restart: asking
        again there would only repeat the supervisor's answer)."""
        try:
            self._client.get_subscription(
                request={"subscription": self.path}, retry=bounded_retry(deadline), timeout=deadline
            )
        except gexc.NotFound:
            raise SubscriptionMissing(
                f"subscription {self.path} does not exist (create it with `miniscan setup`)"
            ) from None
        except gexc.PermissionDenied:
            # roles/pubsub.subscriber grants pubsub.subscriptions.consume but not .get: a
            # least-privilege account may pull what it may not read (issue 27).
            if confirm_consume:
                self._check_consume(deadline)
        except gexc.RetryError as exc:
            raise PubSubUnavailable(unreachable_message(self.path, exc)) from None
        except gexc.GoogleAPICallError as exc:
            raise PubSubUnavailable(
                f"cannot read subscription {self.path}: {exc.message}"
            ) from None

    def _check_consume(self, deadline: float) -> None:
        """Ask Pub/Sub whether this account holds pubsub.subscriptions.consume, which takes
        no message. Where testIamPermissions is not implemented (Google's emulator answers
        UNIMPLEMENTED), fall back to a pull, which must hand back what it took."""
        try:
            granted = self._client.test_iam_permissions(
                request={"resource": self.path, "permissions": [CONSUME]}, timeout=deadline
            ).permissions
        except gexc.MethodNotImplemented:
            self._check_by_pull(deadline)
            return
        except gexc.NotFound:
            raise SubscriptionMissing(
                f"subscription {self.path} does not exist (create it with `miniscan setup`)"
            ) from None
        except gexc.PermissionDenied:
            granted = []
        except gexc.GoogleAPICallError as exc:
            raise PubSubUnavailable(
                f"cannot ask Pub/Sub about {self.path}: {exc.message}"
            ) from None
        if CONSUME not in granted:
            raise NotPermitted(_NOT_PERMITTED.format(path=self.path)) from None

    def _check_by_pull(self, deadline: float) -> None:
        """The fallback where testIamPermissions is not implemented (the emulators): one pull
        that does not wait, whose error says what is wrong; a message it got is handed back
        at once (a lease of 0 s), so it is redelivered without waiting for a deadline."""
        request = _PullRequest(subscription=self.path, max_messages=1, return_immediately=True)
        no_get = "pubsub.subscriptions.get was refused (fine: roles/pubsub.subscriber lacks it)"
        try:
            raw = _api_errors(self._pull, request, timeout=deadline, metadata=self._metadata)
        except gexc.DeadlineExceeded:
            return  # a pull that waited: the subscription exists and answers
        except gexc.NotFound:
            raise SubscriptionMissing(
                f"subscription {self.path} does not exist (create it with `miniscan setup`; "
                f"{no_get})"
            ) from None
        except gexc.PermissionDenied:
            raise NotPermitted(_NOT_PERMITTED.format(path=self.path)) from None
        except gexc.GoogleAPICallError as exc:
            raise PubSubUnavailable(f"cannot pull from {self.path}: {exc.message}") from None
        handed_back = [received.ack_id for received in raw.received_messages]
        if handed_back:
            self.nack(handed_back, deadline=deadline)

    def pull(self, max_messages: int, timeout: float = RPC_TIMEOUT_S) -> list[PulledMessage]:
        """Long-poll for up to `max_messages`; an empty list when none arrived in time.

        One attempt, no retry: the caller's loop is the retry, so that it can keep
        heartbeating and say it is not ready while Pub/Sub is away. A transient failure
        raises PubSubOutage (counted); anything else raises as it came.
        """
        request = _PullRequest(subscription=self.path, max_messages=max_messages)
        try:
            raw = _api_errors(self._pull, request, timeout=timeout, metadata=self._metadata)
        except gexc.DeadlineExceeded:
            return []  # the long poll ran out: nothing to pull, not an error
        except TRANSIENT_ERRORS as exc:
            count_error("pull", exc)
            raise PubSubOutage(f"pull from {self.path} failed: {exc}") from exc
        # Raw protobuf, not the proto-plus wrappers: converting every field of every message
        # through them was 37% of a decoder's CPU (bench/RESULTS.md).
        pulled = []
        for received in raw.received_messages:
            message = received.message  # each read of a field builds a new wrapper: read once
            stamp = message.publish_time
            pulled.append(PulledMessage(received.ack_id, message.data, message.message_id,
                                        stamp.seconds + stamp.nanos / 1e9))  # fmt: skip
        return pulled

    def acknowledge(self, ack_ids: Iterable[str], deadline: float = RPC_TIMEOUT_S) -> None:
        """Acknowledge, retrying transient failures for up to `deadline` s; PubSubOutage
        when they outlast it (the messages are then redelivered: never lost)."""
        for chunk in _chunks(ack_ids):
            request = _AcknowledgeRequest(subscription=self.path, ack_ids=chunk)
            self._call("acknowledge", deadline, request)

    def modify_deadline(
        self, ack_ids: Iterable[str], seconds: int, deadline: float = RPC_TIMEOUT_S
    ) -> None:
        """Extend leases by `seconds`, or with 0 hand the messages back for redelivery now;
        retried like `acknowledge`."""
        for chunk in _chunks(ack_ids):
            request = _ModifyAckDeadlineRequest(
                subscription=self.path, ack_ids=chunk, ack_deadline_seconds=seconds
            )
            self._call("modify_ack_deadline", deadline, request)

    def _call(self, call: str, deadline: float, request) -> None:
        """One settle call, its transient failures retried until `deadline` s have passed;
        each attempt gets what is left of the deadline (as the library's own calls do)."""
        retry = transient_retry(deadline, on_error=lambda exc: count_error(call, exc))
        stub = self._settle[call]
        give_up_at = time.monotonic() + deadline

        def attempt() -> None:
            left = max(0.001, give_up_at - time.monotonic())
            _api_errors(stub, request, timeout=left, metadata=self._metadata)

        try:
            retry(attempt)()
        except gexc.RetryError as exc:
            raise PubSubOutage(
                f"{call} on {self.path} gave up after {deadline:.0f}s: {exc}"
            ) from exc
        except TRANSIENT_ERRORS as exc:
            raise PubSubOutage(f"{call} on {self.path} failed: {exc}") from exc
        except gexc.GoogleAPICallError as exc:
            count_error(call, exc)
            raise

    def nack(self, ack_ids: Iterable[str], deadline: float = RPC_TIMEOUT_S) -> None:
        """Hand the messages back for redelivery now (a lease of 0 s)."""
        self.modify_deadline(ack_ids, 0, deadline=deadline)

    def close(self) -> None:
        self._client.close()


def _api_errors(stub, request, **kwargs):
    """Call a raw stub; a gRPC error comes out as google-api-core's exception for its code
    (what the library's callers, and ours, catch)."""
    try:
        return stub(request, **kwargs)
    except grpc.RpcError as exc:
        raise gexc.from_grpc_error(exc) from exc


def _chunks(ack_ids: Iterable[str]) -> Iterable[list[str]]:
    batch: list[str] = []
    for ack_id in ack_ids:
        batch.append(ack_id)
        if len(batch) == ACK_CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch
