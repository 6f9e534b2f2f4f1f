"""What a new subscription may ask for, and what it then reports.

Owns: the ack deadline's default and bounds, the retention a subscription reports, the
features refused rather than ignored, and turning a CreateSubscription request into the
stored configuration (`new_subscription_config`). Pure: a request in, a message out, or an
`ApiError`.

Never: hold state, take the lock, or look up topics (`localpubsub.state` does).
"""

from __future__ import annotations

from localpubsub import names, protos
from localpubsub.names import invalid, unsupported

DEFAULT_ACK_DEADLINE_S = 10
MAX_ACK_DEADLINE_S = 600
RETENTION_S = 7 * 24 * 3600  # what subscriptions report, as Google's emulator does
# Features whose absence would silently change what a client sees are refused, not ignored.
UNSUPPORTED = (
    "filter",
    "dead_letter_policy",
    "retry_policy",
    "enable_message_ordering",
    "enable_exactly_once_delivery",
    "bigquery_config",
    "cloud_storage_config",
)


def new_subscription_config(request: protos.Subscription) -> protos.Subscription:
    """The configuration a valid request creates: its name, topic, ack deadline and labels,
    with the emulator's retention; INVALID_ARGUMENT or an unsupported feature otherwise."""
    name = names.check_subscription(request.name)
    topic = names.check_topic(request.topic)
    deadline = request.ack_deadline_seconds or DEFAULT_ACK_DEADLINE_S
    if not 0 < deadline <= MAX_ACK_DEADLINE_S:
        raise invalid("ack_deadline_secs out of bounds")
    for feature in UNSUPPORTED:
        if _is_set(request, feature):
            raise unsupported(f"{feature} is")
    if request.push_config.push_endpoint:
        raise unsupported("push subscriptions are")
    config = protos.Subscription(
        name=name, topic=topic, ack_deadline_seconds=deadline, labels=dict(request.labels)
    )
    config.push_config.SetInParent()
    config.message_retention_duration.seconds = RETENTION_S
    return config


def _is_set(request: protos.Subscription, field: str) -> bool:
    value = getattr(request, field)
    return request.HasField(field) if hasattr(value, "ListFields") else bool(value)
