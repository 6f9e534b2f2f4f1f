"""Read the supervisor's HTTP endpoints: one GET with a timeout, and /metrics as samples.

Owns: fetching a URL (status and body; nothing raised when nothing answers), parsing a
Prometheus text exposition with prometheus_client's own parser into plain `Sample`s, and
the views of them that callers want: {sample name with labels: value} spelled as the
exposition spells it, totals per sample name summed over labels, one histogram's
cumulative buckets, and a quantile estimated from them as Prometheus estimates it.
`miniscan demo`'s status line, the end-to-end tests and the benchmark all read /metrics
through here.

Never: retry or wait (callers poll against their own deadlines), or decide what a metric
means (`demo.status` and the other callers do).
"""

from __future__ import annotations

import http.client
import math
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Sample:
    """One sample line of an exposition: `name{labels} value`."""

    name: str
    labels: dict[str, str]
    value: float

    @property
    def key(self) -> str:
        """The sample as the exposition spells it, without its value: `name{a="x",b="y"}`."""
        if not self.labels:
            return self.name
        pairs = ",".join(f'{label}="{_escape(value)}"' for label, value in self.labels.items())
        return f"{self.name}{{{pairs}}}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def fetch(url: str, timeout: float) -> tuple[int, bytes]:
    """Status and body of a GET; (0, b"") when nothing answers (not up yet, or gone)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    # HTTPException too: a server stopping mid-answer gives IncompleteRead or
    # RemoteDisconnected, which are not all OSErrors.
    except (OSError, http.client.HTTPException):
        return 0, b""


def fetch_text(url: str, timeout: float) -> str | None:
    """The body of a 200 answer as text, or None for anything else."""
    status, body = fetch(url, timeout)
    return body.decode() if status == 200 else None


def parse_samples(text: str, only: tuple[str, ...] | None = None) -> list[Sample]:
    """Every sample of a Prometheus text exposition, in its order; with `only`, just those
    of the metrics whose names start with one of these prefixes."""
    # Imported on first use: prometheus_client picks its value store (one process, or the
    # multiprocess files) once, when first imported, and every `miniscan` subcommand imports
    # this module through demo.cli; a reader of /metrics must not make that choice for them.
    from prometheus_client.parser import text_string_to_metric_families

    if only is not None:
        text = _lines_of(text, only)
    return [
        Sample(sample.name, dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def _lines_of(text: str, prefixes: tuple[str, ...]) -> str:
    """The exposition cut down to the metrics named by `prefixes`, before parsing it.

    Measured on the supervisor's whole exposition (~140 lines): the parser takes 1.5 ms,
    30 times a split of the lines. The benchmark polls one counter every 20 ms near the end
    of a drain, on a machine whose 2 cores miniscan is being timed on.
    """
    kept = []
    for line in text.splitlines():
        words = line.split(maxsplit=3) if line.startswith("#") else [line]
        # "# HELP name ...", "# TYPE name kind": the metric's name is the third word.
        name = words[2] if len(words) > 2 else words[0]
        if name.startswith(prefixes):
            kept.append(line)
    return "\n".join(kept) + "\n"


def sample_values(samples: Iterable[Sample]) -> dict[str, float]:
    """{sample name with labels: value}, e.g. `miniscan_children_alive{role="decoder"}`."""
    return {sample.key: sample.value for sample in samples}


def totals_by_name(samples: Iterable[Sample]) -> dict[str, float]:
    """{sample name: value summed over its labels}."""
    totals: dict[str, float] = {}
    for sample in samples:
        totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


def histogram_buckets(samples: Iterable[Sample], metric: str) -> tuple[tuple[float, float], ...]:
    """(upper bound, cumulative count) of histogram `metric`, summed over its other labels,
    sorted by bound; the last bound is +Inf. Empty when the histogram has no samples."""
    buckets: dict[float, float] = {}
    bucket_name = metric + "_bucket"
    for sample in samples:
        if sample.name == bucket_name:
            bound = float(sample.labels["le"])  # "+Inf" reads as math.inf
            buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return tuple(sorted(buckets.items()))


def estimate_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """The q-quantile of a histogram, as Prometheus's histogram_quantile estimates it.

    `buckets` are (upper bound, cumulative count) sorted by bound, the last one +Inf. The
    value is interpolated linearly inside the bucket that holds the rank (the first bucket
    starts at 0); a rank in the +Inf bucket gives the highest finite bound. None when the
    histogram is empty.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile {q} is not between 0 and 1")
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for upper_bound, count in buckets:
        if count >= rank and count > lower_count:
            if math.isinf(upper_bound):
                return lower_bound
            share = (rank - lower_count) / (count - lower_count)
            return lower_bound + (upper_bound - lower_bound) * share
        lower_bound, lower_count = upper_bound, count
    return lower_bound


def scrape_samples(url: str, timeout: float, only: tuple[str, ...] | None = None) -> list[Sample]:
    """The samples /metrics serves at `url` (see `parse_samples` for `only`); [] while
    nothing serves them."""
    text = fetch_text(url, timeout)
    return parse_samples(text, only) if text is not None else []


def scrape_values(
    url: str, timeout: float, only: tuple[str, ...] | None = None
) -> dict[str, float]:
    """`sample_values` of what /metrics serves at `url`; {} while nothing serves it."""
    return sample_values(scrape_samples(url, timeout, only))
