"""The start-up check of the subscription, made from a process of the decoders' server.

Owns: `check_subscription`, which asks in a throwaway process of the context it is given
whether the subscription can be used, and `subscription_problem`, what that process runs.
The supervisor gives it the decoders' context (`supervisor.start_methods`), whose server
has imported the Pub/Sub client already and preloads this module too: the check is then a
fork that makes one call, not a fresh interpreter that imports the client a second time in
series before any child can start (0.45-0.65 s of CPU, measured; see `start_methods`).

Never: import the Pub/Sub client at module level. The supervisor imports this module to
name the function it sends to the other process, and must never load the client itself
(58 MiB it would then hold for nothing): `subscription_problem` imports it where it runs.
"""

from __future__ import annotations

import signal
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.context import BaseContext

from contracts.signal_relay import STOP_SIGNALS


def check_subscription(context: BaseContext, project: str, subscription: str) -> str | None:
    """Why the subscription cannot be used, or None, asked from a process of `context`."""
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(subscription_problem, project, subscription).result()


def subscription_problem(project: str, subscription: str) -> str | None:
    """Why the subscription cannot be used, or None. Runs in the throwaway process."""
    # A fork of the decoders' server starts with SIGINT and SIGTERM blocked, kept so for the
    # decoders (`supervisor.spawning`); the check lets them in again, so that a Ctrl-C during
    # start-up ends it at once, not once its call gave up (up to the connect timeout).
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    from broker.client import PubSubUnavailable
    from broker.subscription import Subscription

    try:
        handle = Subscription(project, subscription)
    except PubSubUnavailable as exc:
        return str(exc)
    try:
        handle.check()
    except PubSubUnavailable as exc:
        return str(exc)
    finally:
        handle.close()
    return None
