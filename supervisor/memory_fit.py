"""Whether a run's settings fit under its container's memory limit, and the default
in-flight byte budget that does.

Owns: `memory_needed`, a model of what a tree holds, from the benchmark's figures
(bench/RESULTS.md, "Memory and start-up": `--workers 8` holds ~195-230 MiB PSS in all, and a
cgroup counts each page once, as PSS sums do): the supervisor, the forkserver, the writer and
the resource tracker ~80 MiB together, ~20 MiB each forked decoder, plus the bytes in
flight, which a decoder holds up to three times (the pulled payload, its decoded records
and the frame on its way to the writer) and the writer twice (the batch and its rows).
And `fit_to_memory`, which lowers what the operator left at its default until the tree
fits: first the per-decoder budget (`contracts.defaults.DEFAULT_MAX_IN_FLIGHT_BYTES`), then,
when even the smallest budget does not fit, the number of decoders (its default is every
usable CPU: 64 CPUs under a 1 GiB limit would otherwise refuse a run nobody configured,
issue 27). It refuses only settings that cannot fit at all.

Never: read files (the caller passes the limit, `supervisor.cgroup_limits`), or change a
value the operator gave (`SupervisorSettings.given`), even one equal to its default:
settings that were asked for explicitly fit or are refused.
"""

from __future__ import annotations

import dataclasses

from supervisor.settings import SupervisorSettings

MIB = 1024 * 1024
TREE_BASE_BYTES = 80 * MIB
DECODER_BYTES = 20 * MIB
DECODER_COPIES = 3  # payload, decoded records, frame to the writer
WRITER_COPIES = 2  # batch and its rows
SMALLEST_BUDGET = 64 * 1024  # the lowest --max-in-flight-bytes accepts
WORKERS = "workers"  # names in SupervisorSettings.given
BUDGET = "decoder.max_in_flight_bytes"


class MemoryTooSmall(Exception):
    """The settings need more memory than the container may use."""


def memory_needed(settings: SupervisorSettings, in_flight_bytes: int | None = None) -> int:
    """Bytes the tree may hold at most under these settings (a model: see above)."""
    budget = settings.decoder.max_in_flight_bytes if in_flight_bytes is None else in_flight_bytes
    decoders = settings.workers * (DECODER_BYTES + DECODER_COPIES * budget)
    return TREE_BASE_BYTES + decoders + WRITER_COPIES * settings.writer.batch_bytes


def fit_to_memory(settings: SupervisorSettings, limit: int | None) -> SupervisorSettings:
    """These settings, with the defaults the operator did not set lowered where they would
    not fit under `limit` bytes (None: no limit): the budget first, then the decoders;
    MemoryTooSmall when nothing fits."""
    if limit is None or memory_needed(settings) <= limit:
        return settings
    for workers in _worker_counts(settings):
        fitted = _fit_budget(dataclasses.replace(settings, workers=workers), limit)
        if fitted is not None:
            return fitted
    raise MemoryTooSmall(
        f"--workers {settings.workers} with --max-in-flight-bytes "
        f"{settings.decoder.max_in_flight_bytes} and --batch-bytes {settings.writer.batch_bytes} "
        f"need about {memory_needed(settings) // MIB} MiB, more than the container's memory "
        f"limit of {limit // MIB} MiB; lower them or raise the limit"
    )


def _worker_counts(settings: SupervisorSettings) -> range:
    """The decoder counts to try, most first: only the one asked for, when it was."""
    if WORKERS in settings.given:
        return range(settings.workers, settings.workers - 1, -1)
    return range(settings.workers, 0, -1)


def _fit_budget(settings: SupervisorSettings, limit: int) -> SupervisorSettings | None:
    """These settings if they fit, else with the default budget lowered to fit, else None."""
    if memory_needed(settings) <= limit:
        return settings
    if BUDGET in settings.given:
        return None
    room = limit - memory_needed(settings, in_flight_bytes=0)
    budget = room // (DECODER_COPIES * settings.workers) if room > 0 else 0
    if budget < SMALLEST_BUDGET:
        return None
    decoder = dataclasses.replace(settings.decoder, max_in_flight_bytes=budget)
    return dataclasses.replace(settings, decoder=decoder)
