"""What a Pub/Sub failure looks like to the rest of miniscan, without the Pub/Sub library.

Owns: `PubSubUnavailable`, the one error class callers catch (broker.subscription's finer
ones subclass it). Kept apart from broker.client so that a command that only reads the
database (`miniscan stats`, `query`) can name the error without importing the Google client,
which costs 0.6 s of start-up.

Never: import google.*, grpc or any other module of broker/.
"""

from __future__ import annotations


class PubSubUnavailable(RuntimeError):
    """Pub/Sub did not answer within the bounded retry, or refused the call."""
