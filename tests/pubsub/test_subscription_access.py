"""The start-up check with a subscriber-only account (issue 27): where get_subscription is
refused (PERMISSION_DENIED; roles/pubsub.subscriber lacks pubsub.subscriptions.get), the
supervisor's check asks testIamPermissions for pubsub.subscriptions.consume, which takes no
message; where that is not implemented (the emulator answers UNIMPLEMENTED, tried here for
real) it falls back to a pull. A decoder's own check takes a refused read as a pass. The
emulator has no IAM, so the refusals are a fake on the client's calls; everything else is
real."""

from __future__ import annotations

import grpc
import pytest
from google.api_core import exceptions as gexc

from broker import client
from broker.subscription import NotPermitted, Subscription, SubscriptionMissing

pytestmark = pytest.mark.emulator


class Refused(grpc.RpcError, grpc.Call):
    """A gRPC PERMISSION_DENIED, as the raw stubs raise it."""

    def code(self):
        return grpc.StatusCode.PERMISSION_DENIED

    def details(self):
        return "User not authorized to perform this action."

    def initial_metadata(self):
        return ()

    def trailing_metadata(self):
        return ()

    def is_active(self):
        return False

    def time_remaining(self):
        return None

    def cancel(self):
        return False

    def add_callback(self, callback):
        return False


def refuse_get(handle: Subscription, monkeypatch) -> None:
    def get_subscription(*args, **kwargs):
        raise gexc.PermissionDenied("User not authorized to perform this action.")

    monkeypatch.setattr(handle._client, "get_subscription", get_subscription)


def refuse_pull(handle: Subscription, monkeypatch) -> None:
    def pull(*args, **kwargs):
        raise Refused()

    monkeypatch.setattr(handle, "_pull", pull)


def publish_one(target) -> None:
    publisher = client.publisher_client()
    topic = publisher.topic_path(target.project, target.topic)
    publisher.publish(topic, b"kept").result(timeout=30)


def test_a_subscriber_only_account_passes_the_check_and_loses_no_message(
    pubsub_target, monkeypatch
):
    publish_one(pubsub_target)
    handle = Subscription(pubsub_target.project, pubsub_target.subscription)
    try:
        refuse_get(handle, monkeypatch)
        handle.check()
        # The check's pull handed the message back at once: it is here to pull again now,
        # long before the subscription's ack deadline would have redelivered it.
        pulled = handle.pull(10, timeout=5)
        assert [m.data for m in pulled] == [b"kept"]
        handle.acknowledge([m.ack_id for m in pulled])
    finally:
        handle.close()


def test_a_missing_subscription_is_reported_from_the_pulls_own_error(pubsub_emulator, monkeypatch):
    handle = Subscription("test-project", "no-such-subscription")
    try:
        refuse_get(handle, monkeypatch)
        with pytest.raises(SubscriptionMissing) as missing:
            handle.check()
    finally:
        handle.close()
    message = str(missing.value)
    assert "no-such-subscription does not exist" in message
    assert "pubsub.subscriptions.get was refused" in message
    assert "\n" not in message


def test_an_account_that_may_not_pull_is_told_which_permission_it_lacks(pubsub_target, monkeypatch):
    handle = Subscription(pubsub_target.project, pubsub_target.subscription)
    try:
        refuse_get(handle, monkeypatch)
        refuse_pull(handle, monkeypatch)
        with pytest.raises(NotPermitted, match=r"or the subscription does not exist: it needs"):
            handle.check()
    finally:
        handle.close()


class IamAnswer:
    def __init__(self, permissions):
        self.permissions = permissions


def answer_iam(handle: Subscription, monkeypatch, permissions) -> None:
    def test_iam_permissions(request, timeout=None):
        assert request["permissions"] == ["pubsub.subscriptions.consume"]
        return IamAnswer(permissions)

    monkeypatch.setattr(handle._client, "test_iam_permissions", test_iam_permissions)


def record_pulls(handle: Subscription, monkeypatch) -> list:
    pulls = []
    real = handle._pull

    def pull(*args, **kwargs):
        pulls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(handle, "_pull", pull)
    return pulls


def test_where_testiampermissions_answers_the_check_pulls_nothing(pubsub_target, monkeypatch):
    publish_one(pubsub_target)
    handle = Subscription(pubsub_target.project, pubsub_target.subscription)
    try:
        refuse_get(handle, monkeypatch)
        answer_iam(handle, monkeypatch, ["pubsub.subscriptions.consume"])
        pulls = record_pulls(handle, monkeypatch)
        handle.check()
        assert pulls == []  # the message's delivery attempts are untouched
        pulled = handle.pull(10, timeout=5)
        assert [m.data for m in pulled] == [b"kept"]
        handle.acknowledge([m.ack_id for m in pulled])
    finally:
        handle.close()


def test_consume_not_granted_is_refused_naming_both_causes(pubsub_target, monkeypatch):
    handle = Subscription(pubsub_target.project, pubsub_target.subscription)
    try:
        refuse_get(handle, monkeypatch)
        answer_iam(handle, monkeypatch, [])
        pulls = record_pulls(handle, monkeypatch)
        with pytest.raises(NotPermitted) as refused:
            handle.check()
        assert pulls == []
    finally:
        handle.close()
    message = str(refused.value)
    assert "or the subscription does not exist" in message
    assert "pubsub.subscriptions.consume" in message and "\n" not in message


def test_a_decoder_takes_a_refused_read_as_a_pass_and_pulls_nothing(pubsub_target, monkeypatch):
    publish_one(pubsub_target)
    handle = Subscription(pubsub_target.project, pubsub_target.subscription)
    try:
        refuse_get(handle, monkeypatch)
        pulls = record_pulls(handle, monkeypatch)
        handle.check(confirm_consume=False)
        assert pulls == []
    finally:
        handle.close()
