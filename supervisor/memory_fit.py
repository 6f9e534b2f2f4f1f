"""Whether a run's settings fit under its container's memory limit, and the default
in-flight byte budget that does.

Owns: `memory_needed`, a model of what a tree holds, from the benchmark's figures
(bench/RESULTS.md, "Memory and start-up": `--workers 8` holds ~195-230 MiB PSS in all, and a
cgroup counts each page once, as PSS sums do): the supervisor, the forkserver, the writer and
the resource tracker ~80 MiB together, ~20 MiB each forked decoder, plus the bytes in
flight, which a decoder holds up to three times (the pulled payload, its decoded records
and the frame on its way to the writer) and the writer twice (the batch and its rows).
And `fit_to_memory`, which shrinks the default per-decoder budget
(`contracts.defaults.DEFAULT_MAX_IN_FLIGHT_BYTES`) until the tree fits, and refuses settings
that cannot fit at all.

Never: read files (the caller passes the limit, `supervisor.cgroup_limits`), or change a
budget the operator set: settings that were asked for explicitly fit or are refused.
"""

from __future__ import annotations

import dataclasses

from contracts import defaults
from supervisor.settings import SupervisorSettings

MIB = 1024 * 1024
TREE_BASE_BYTES = 80 * MIB
DECODER_BYTES = 20 * MIB
DECODER_COPIES = 3  # payload, decoded records, frame to the writer
WRITER_COPIES = 2  # batch and its rows
SMALLEST_BUDGET = 64 * 1024  # the lowest --max-in-flight-bytes accepts


class MemoryTooSmall(Exception):
    """The settings need more memory than the container may use."""


def memory_needed(settings: SupervisorSettings, in_flight_bytes: int | None = None) -> int:
    """Bytes the tree may hold at most under these settings (a model: see above)."""
    budget = settings.decoder.max_in_flight_bytes if in_flight_bytes is None else in_flight_bytes
    decoders = settings.workers * (DECODER_BYTES + DECODER_COPIES * budget)
    return TREE_BASE_BYTES + decoders + WRITER_COPIES * settings.writer.batch_bytes


def fit_to_memory(settings: SupervisorSettings, limit: int | None) -> SupervisorSettings:
    """These settings, with the default in-flight budget lowered where it would not fit
    under `limit` bytes (None: no limit); MemoryTooSmall when nothing fits."""
    if limit is None or memory_needed(settings) <= limit:
        return settings
    budget = settings.decoder.max_in_flight_bytes
    if budget == defaults.DEFAULT_MAX_IN_FLIGHT_BYTES:
        room = limit - memory_needed(settings, in_flight_bytes=0)
        budget = room // (DECODER_COPIES * settings.workers) if room > 0 else 0
        if budget >= SMALLEST_BUDGET:
            decoder = dataclasses.replace(settings.decoder, max_in_flight_bytes=budget)
            return dataclasses.replace(settings, decoder=decoder)
    raise MemoryTooSmall(
        f"--workers {settings.workers} with --max-in-flight-bytes "
        f"{settings.decoder.max_in_flight_bytes} and --batch-bytes {settings.writer.batch_bytes} "
        f"need about {memory_needed(settings) // MIB} MiB, more than the container's memory "
        f"limit of {limit // MIB} MiB; lower them or raise the limit"
    )
