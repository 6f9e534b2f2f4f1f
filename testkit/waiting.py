"""One bounded wait: poll a condition until it holds, against a deadline.

Owns: `wait_until`, which the end-to-end tests, the PostgreSQL store's tests and the
benchmarks use to wait for something another process does (a table filled, a backend gone,
every commit seen), and `WaitTimedOut`, what it raises when the deadline passes first.

Never: sleep for a fixed time to "let things settle" (every wait here ends as soon as its
condition holds), or decide what a timeout means to the caller (a test fails on it; a
benchmark may go on with what it has).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimedOut(AssertionError):
    """The condition did not hold within the timeout. An AssertionError, so that pytest
    reports it as the failed expectation it is."""


def wait_until(condition: Callable[[], T], timeout: float, what: str, every: float = 0.2) -> T:
    """Call `condition` every `every` s until it returns something truthy, and return that.

    The condition is asked once more after the deadline, so that a slow last poll still
    counts; after that, WaitTimedOut names `what` was waited for.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise WaitTimedOut(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)
