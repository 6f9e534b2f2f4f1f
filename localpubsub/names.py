"""Resource names and ack ids of the local Pub/Sub server, and the error every call raises.

Owns: checking `projects/{project}/topics/{id}` and `.../subscriptions/{id}` the way Pub/Sub
does (an id is 3 to 255 characters, starts with a letter, never with "goog"), the ack-id
format, and `ApiError`, a gRPC status code with its message, which `localpubsub.service`
turns into the RPC's status.

Never: hold state or import grpc's server side; these are pure functions.
"""

from __future__ import annotations

import re

import grpc

# The id rules of Pub/Sub's documentation ("Resource names"), which Google's emulator enforces.
_RESOURCE_ID = r"(?!goog)[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}"
_PROJECT = r"[^/]+"
TOPIC_NAME = re.compile(rf"projects/({_PROJECT})/topics/({_RESOURCE_ID})")
SUBSCRIPTION_NAME = re.compile(rf"projects/({_PROJECT})/subscriptions/({_RESOURCE_ID})")
PROJECT_NAME = re.compile(rf"projects/({_PROJECT})")
# What a subscription whose topic was deleted reports as its topic, as Pub/Sub does.
DELETED_TOPIC = "_deleted-topic_"


class ApiError(Exception):
    """A refused call: the gRPC status code and the message the client sees."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def not_found(what: str) -> ApiError:
    return ApiError(grpc.StatusCode.NOT_FOUND, what)


def invalid(what: str) -> ApiError:
    return ApiError(grpc.StatusCode.INVALID_ARGUMENT, what)


def already_exists(what: str) -> ApiError:
    return ApiError(grpc.StatusCode.ALREADY_EXISTS, what)


def unsupported(what: str) -> ApiError:
    return ApiError(grpc.StatusCode.UNIMPLEMENTED, f"{what} not supported by the built-in server")


def check_topic(name: str) -> str:
    if not TOPIC_NAME.fullmatch(name):
        raise invalid(f"Invalid [topics] name: (name={name})")
    return name


def check_subscription(name: str) -> str:
    if not SUBSCRIPTION_NAME.fullmatch(name):
        raise invalid(f"Invalid [subscriptions] name: (name={name})")
    return name


def check_project(name: str) -> str:
    if not PROJECT_NAME.fullmatch(name):
        raise invalid(f"Invalid [projects] name: (name={name})")
    return name


def project_of(name: str) -> str:
    """`projects/p` of a topic or subscription name that passed its check."""
    return "/".join(name.split("/", 2)[:2])


def make_ack_id(subscription: str, number: int) -> str:
    """An ack id names its subscription, as Google's emulator's do, so that one sent to the
    wrong subscription is refused rather than silently ignored."""
    return f"{subscription}:{number}"


def parse_ack_id(subscription: str, ack_id: str) -> int:
    """The number in `ack_id`; ApiError(INVALID_ARGUMENT) when it is malformed or was issued
    by another subscription (an unknown or expired number is not an error)."""
    owner, colon, number = ack_id.rpartition(":")
    if not colon or not number.isdigit() or not number.isascii():
        raise invalid(f"Invalid ack id (ack_id={ack_id})")
    if owner != subscription:
        raise invalid(
            f"Subscription {subscription} received an invalid ack ID {ack_id}, "
            f"meant for subscription: {owner}"
        )
    return int(number)
