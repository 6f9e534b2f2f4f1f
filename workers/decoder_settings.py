"""The settings of one decoder process, as one frozen, picklable value.

Owns: `DecoderSettings`, each field with its one default and, where the command line sets
it, its flag (`contracts.flags`): which subscription to pull, the in-flight budgets, and
the clock skew a scan's timestamp may have.

Never: read the environment or flags (`supervisor.cli` does), or hold live objects.
"""

from __future__ import annotations

from dataclasses import dataclass

from contracts import defaults
from contracts.flags import Flag, setting
from workers.decode import DEFAULT_MAX_CLOCK_SKEW_S


@dataclass(frozen=True)
class DecoderSettings:
    project: str = setting(defaults.DEFAULT_PROJECT, Flag(
        "--project", "Google Cloud project.",
        envvars=("MINISCAN_PROJECT", "PUBSUB_PROJECT_ID"),
    ))  # fmt: skip
    subscription: str = setting(defaults.DEFAULT_SUBSCRIPTION, Flag("--subscription"))
    max_in_flight: int = setting(2000, Flag(
        "--max-in-flight", "Pulled but unacked messages per decoder (backpressure).",
        low=1, high=1_000_000,
    ))  # fmt: skip
    max_in_flight_bytes: int = setting(defaults.DEFAULT_MAX_IN_FLIGHT_BYTES, Flag(
        "--max-in-flight-bytes", "Payload bytes pulled but unacked per decoder (backpressure; "
        "a larger message is pulled alone).", low=64 * 1024, high=2**31,
    ))  # fmt: skip
    max_clock_skew_s: float = setting(DEFAULT_MAX_CLOCK_SKEW_S, Flag(
        "--max-clock-skew", "How far past its publish time a scan's timestamp may be (seconds, "
        "or a duration such as 90m); later ones are dead letters (timestamp_in_future).",
        low=0, duration=True,
    ))  # fmt: skip
    lease_s: int = 10  # seconds each lease extension asks for
    pull_batch_max: int = 1000  # messages one pull asks for at most, whatever the budget

    @property
    def pull_batch(self) -> int:
        """Messages one pull asks for at most: never more than the whole budget."""
        return min(self.pull_batch_max, self.max_in_flight)
