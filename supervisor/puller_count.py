"""How many decoders pull while there is a backlog: a feedback rule, as a pure object.

Owns: `PullerCount`, which the supervisor asks every STEER_INTERVAL_S, given whether any
decoder's pull came back full lately (a backlog) and how busy the machine's CPUs were
since the last time (0..1, or None where that cannot be read), and which answers how many
decoders may pull (`workers.pull_share` carries the answer to them).

The rule:
- At start: one puller per CPU (a tree that starts usually finds a backlog), until some
  decoder's pull has returned and shown whether there is one.
- No backlog (the subscription is caught up): every decoder pulls. Their long polls wait
  for new messages, and more of them waiting means a new message is picked up sooner
  (`workers.pull_turns`).
- A backlog appears: one puller per CPU, at most `workers`. Two cores cannot run eight
  decoders at once; eight share them with cold caches and an ack each per commit (RESULTS
  "fourth pass": 27.6 -> 21.6 us of CPU a message when two of eight pulled).
- While the backlog lasts: one more puller while the CPUs are idle more than GROW_BELOW of
  the time (the pullers wait on something that is not this machine, e.g. real Pub/Sub's
  network round trips, so more of them in flight drain faster), one fewer, down to one per
  CPU, while they are busier than SHRINK_ABOVE. So on real Pub/Sub the count climbs to
  `workers` within a second of a backlog, and it never caps what idle CPUs could do.

Never: read the clock or /proc (the supervisor passes in what it measured), or go below 1
or above `workers`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

STEER_INTERVAL_S = 0.1
# A decoder's full pull counts as "a backlog now" for this long.
BACKLOG_FRESH_S = 0.3
GROW_BELOW = 0.6  # CPU busy fraction under which one more decoder may pull
SHRINK_ABOVE = 0.9  # over which one fewer does (never below one per CPU)


@dataclass
class PullerCount:
    workers: int
    cpus: int
    backlog: bool = True  # steering a backlog; a tree that starts usually has one
    floor: int = field(init=False)  # one puller per CPU, at most `workers`, at least one
    allowed: int = field(init=False)

    def __post_init__(self) -> None:
        self.floor = max(1, min(self.workers, self.cpus))
        self.allowed = self.floor if self.backlog else self.workers

    def update(self, backlog: bool | None, cpu_busy: float | None) -> int:
        """How many decoders may pull, given the last interval. `backlog` None: no decoder's
        pull has returned yet, so the count stays what the tree started with."""
        if backlog is None:
            return self.allowed
        if not backlog or cpu_busy is None:
            # Caught up, or nothing to steer by (no /proc/stat): everyone pulls.
            self.allowed = self.workers
            self.backlog = False
        elif not self.backlog:
            self.allowed = self.floor
            self.backlog = True
        elif cpu_busy < GROW_BELOW:
            self.allowed = min(self.workers, self.allowed + 1)
        elif cpu_busy > SHRINK_ABOVE:
            self.allowed = max(self.floor, self.allowed - 1)
        return self.allowed
