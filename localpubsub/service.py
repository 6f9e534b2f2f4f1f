"""The google.pubsub.v1 Publisher and Subscriber gRPC services of the local Pub/Sub server.

Owns: one method handler per RPC that miniscan, its scanner, admin commands, tests and
benchmarks call, registered as generic handlers (google-cloud-pubsub ships no servicer
base classes): decode the request, call `PubSubState`, encode the answer, and turn an
`ApiError` into the call's gRPC status. Also how long an empty unary pull waits.

Never: keep state of its own (`localpubsub.state` has it all) or decide Pub/Sub semantics;
RPCs not listed here answer UNIMPLEMENTED, which gRPC does for us.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import suppress

import grpc

from localpubsub import protos
from localpubsub.names import ApiError, invalid
from localpubsub.state import MAX_REQUEST_BYTES, PubSubState
from localpubsub.streaming import PullStream

# An unary pull with nothing to deliver answers empty after at most this long, as Pub/Sub's
# long poll does, so that a caller without a deadline does not hold a server thread forever.
MAX_LONG_POLL_S = 30.0


def long_poll_s(time_remaining: float | None) -> float:
    """How long an empty pull waits: until shortly before the caller's deadline, so that the
    caller gets an empty answer rather than DEADLINE_EXCEEDED, as from Google's emulator
    (which answered a pull with a 10 s deadline after 9.1 s)."""
    if time_remaining is None:
        return MAX_LONG_POLL_S
    return max(0.0, min(MAX_LONG_POLL_S, time_remaining - min(1.0, time_remaining / 4)))


class PublisherService:
    def __init__(self, state: PubSubState) -> None:
        self.state = state

    def create_topic(self, request, context):
        return self.state.create_topic(request)

    def get_topic(self, request, context):
        return self.state.get_topic(request.topic)

    def delete_topic(self, request, context):
        self.state.delete_topic(request.topic)
        return protos.Empty()

    def list_topics(self, request, context):
        topics, token = self.state.list_topics(
            request.project, request.page_size, request.page_token
        )
        return protos.ListTopicsResponse(topics=topics, next_page_token=token)

    def list_topic_subscriptions(self, request, context):
        found, token = self.state.list_topic_subscriptions(
            request.topic, request.page_size, request.page_token
        )
        return protos.ListTopicSubscriptionsResponse(subscriptions=found, next_page_token=token)

    def publish(self, request, context):
        if request.ByteSize() > MAX_REQUEST_BYTES:
            raise invalid(f"Request payload size exceeds the limit: {MAX_REQUEST_BYTES} bytes.")
        ids = self.state.publish(request.topic, request.messages)
        return protos.PublishResponse(message_ids=ids)

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler("google.pubsub.v1.Publisher", {
            "CreateTopic": _unary(self.create_topic, protos.Topic, protos.Topic),
            "GetTopic": _unary(self.get_topic, protos.GetTopicRequest, protos.Topic),
            "DeleteTopic": _unary(self.delete_topic, protos.DeleteTopicRequest, protos.Empty),
            "ListTopics": _unary(
                self.list_topics, protos.ListTopicsRequest, protos.ListTopicsResponse
            ),
            "ListTopicSubscriptions": _unary(
                self.list_topic_subscriptions,
                protos.ListTopicSubscriptionsRequest,
                protos.ListTopicSubscriptionsResponse,
            ),
            "Publish": _unary(self.publish, protos.PublishRequest, protos.PublishResponse),
        })  # fmt: skip


class SubscriberService:
    def __init__(self, state: PubSubState) -> None:
        self.state = state

    def create_subscription(self, request, context):
        return self.state.create_subscription(request)

    def get_subscription(self, request, context):
        return self.state.get_subscription(request.subscription)

    def delete_subscription(self, request, context):
        self.state.delete_subscription(request.subscription)
        return protos.Empty()

    def list_subscriptions(self, request, context):
        found, token = self.state.list_subscriptions(
            request.project, request.page_size, request.page_token
        )
        return protos.ListSubscriptionsResponse(subscriptions=found, next_page_token=token)

    def pull(self, request, context):
        wait_s = 0.0 if request.return_immediately else long_poll_s(context.time_remaining())
        taken = self.state.pull(request.subscription, request.max_messages, wait_s)
        response = protos.PullResponse()
        if taken and not context.is_active():
            # The caller gave up while we waited: hand its messages back now rather than
            # leave them leased to nobody until their ack deadline.
            with suppress(ApiError):
                self.state.modify_ack_deadline(
                    request.subscription, [ack_id for ack_id, _ in taken], 0
                )
            return response
        for ack_id, message in taken:
            response.received_messages.add(ack_id=ack_id, message=message)
        return response

    def acknowledge(self, request, context):
        self.state.acknowledge(request.subscription, request.ack_ids)
        return protos.Empty()

    def modify_ack_deadline(self, request, context):
        self.state.modify_ack_deadline(
            request.subscription, request.ack_ids, request.ack_deadline_seconds
        )
        return protos.Empty()

    def streaming_pull(self, requests, context):
        first = next(requests, None)
        if first is None:
            return
        yield from PullStream(self.state, first).responses(requests, context)

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler("google.pubsub.v1.Subscriber", {
            "CreateSubscription": _unary(
                self.create_subscription, protos.Subscription, protos.Subscription
            ),
            "GetSubscription": _unary(
                self.get_subscription, protos.GetSubscriptionRequest, protos.Subscription
            ),
            "DeleteSubscription": _unary(
                self.delete_subscription, protos.DeleteSubscriptionRequest, protos.Empty
            ),
            "ListSubscriptions": _unary(
                self.list_subscriptions,
                protos.ListSubscriptionsRequest,
                protos.ListSubscriptionsResponse,
            ),
            "Pull": _unary(self.pull, protos.PullRequest, protos.PullResponse),
            "Acknowledge": _unary(self.acknowledge, protos.AcknowledgeRequest, protos.Empty),
            "ModifyAckDeadline": _unary(
                self.modify_ack_deadline, protos.ModifyAckDeadlineRequest, protos.Empty
            ),
            "StreamingPull": grpc.stream_stream_rpc_method_handler(
                _streamed(self.streaming_pull),
                request_deserializer=protos.StreamingPullRequest.FromString,
                response_serializer=protos.StreamingPullResponse.SerializeToString,
            ),
        })  # fmt: skip


def _unary(method: Callable, request_class, response_class) -> grpc.RpcMethodHandler:
    def call(request, context):
        try:
            return method(request, context)
        except ApiError as exc:
            context.abort(exc.code, exc.message)

    return grpc.unary_unary_rpc_method_handler(
        call,
        request_deserializer=request_class.FromString,
        response_serializer=response_class.SerializeToString,
    )


def _streamed(method: Callable) -> Callable:
    def call(requests, context) -> Iterator:
        try:
            yield from method(requests, context)
        except ApiError as exc:
            context.abort(exc.code, exc.message)

    return call
