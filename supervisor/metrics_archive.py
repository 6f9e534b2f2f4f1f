"""Fold a dead child's Prometheus samples into one archive, so the directory stays bounded.

Owns: `archive_dead_process(pid)`, which the supervisor calls when it reaps a child, and
`ARCHIVE_LOCK`, which the scrape holds while it reads the directory. prometheus_client's
multiprocess mode keeps one file per process and type (`counter_<pid>.db`, ...) and its
`mark_process_dead` removes only live gauges: every restarted child left its counters and
histograms behind for good, and every scrape read them all (issue 25). Here the dead
process's values are added into files of pid ARCHIVE_PID (0, the kernel's, never a child's),
in prometheus_client's own file format, so its collector reads the archive like any other
process's file and the totals stay what they were; then the dead files are removed.

Archiving is best effort and never raises: a corrupt or unreadable sample file, a failed
write or a failed removal is logged and the supervisor's loop goes on (an exception here
used to stop the whole tree). Each archive is rebuilt in a temporary file and moved over the
old one with `os.replace`, and the dead file is removed only after that: a write that fails
halfway leaves the archive as it was and the dead file in place, never the values twice.

How each kind merges: counters, histograms (their files hold per-bucket counts, summed by
the collector) and summaries add; gauges keep their mode's rule (sum adds, max and min
keep the extreme, mostrecent keeps the newer timestamp); live gauges are dropped, as
`mark_process_dead` does; `all` gauges carry the pid as a label, so they are left alone.

Never: touch a live process's files, or anything but prometheus_client's sample files.
"""

from __future__ import annotations

import logging
import os
import struct
import threading

from prometheus_client import multiprocess
from prometheus_client.mmap_dict import MmapedDict

from supervisor.metrics_dir import ENV

log = logging.getLogger(__name__)

ARCHIVE_PID = 0
# Held by the scrape while it lists and reads the files, and here from the first archive
# write to the last removal: a scrape never sees a dead child's values twice, or not at all.
ARCHIVE_LOCK = threading.Lock()

_ADD = {"counter", "histogram", "summary", "gauge_sum"}
_KEEP = {
    "gauge_max": lambda old, new: new if new[0] > old[0] else old,
    "gauge_min": lambda old, new: new if new[0] < old[0] else old,
    "gauge_mostrecent": lambda old, new: new if new[1] > old[1] else old,
}


def archive_dead_process(pid: int, path: str | None = None) -> None:
    """Merge the dead process `pid`'s samples into the archive files and remove its own.
    Logs and returns on any error: a metrics file must never stop the tree."""
    path = path or os.environ.get(ENV)
    if not path or pid == ARCHIVE_PID:
        return
    try:
        with ARCHIVE_LOCK:
            multiprocess.mark_process_dead(pid, path)  # its live gauges: dropped
            for kind in (*_ADD, *_KEEP):
                _archive_one_file(path, pid, kind)
    except Exception:
        log.exception("could not archive the metrics of dead process %d; going on", pid)


def _archive_one_file(path: str, pid: int, kind: str) -> None:
    dead = os.path.join(path, f"{kind}_{pid}.db")
    if not os.path.exists(dead):
        return
    values = _read_dead_file(dead)
    if values:
        _replace_archive(os.path.join(path, f"{kind}_{ARCHIVE_PID}.db"), kind, values)
    # Only now: had the archive not been replaced, the dead file would still hold its values.
    os.unlink(dead)


def _read_dead_file(dead: str) -> list[tuple[str, float, float]]:
    """Its samples, read in full now (prometheus_client reads them lazily, so a corrupt
    file raises only while iterating); [] for a file nobody can read."""
    try:
        return values_of(MmapedDict.read_all_values_from_file(dead))
    except (OSError, ValueError, RuntimeError, struct.error, UnicodeDecodeError) as error:
        # A file the child was still creating when it died, or a corrupt one: its values
        # are lost either way, and keeping it would only fail every scrape again.
        log.warning("dropping the unreadable metrics file %s: %s", dead, error)
        return []


def _replace_archive(archive_path: str, kind: str, values) -> None:
    kept = _read_archive(archive_path)
    for key, value, stamp in values:
        kept[key] = merge_sample(kind, kept.get(key), (value, stamp))
    temporary = archive_path + ".tmp"  # not *.db: the scrape never reads it
    fresh = MmapedDict(temporary)
    try:
        for key, (value, stamp) in kept.items():
            fresh.write_value(key, value, stamp)
    finally:
        fresh.close()
    os.replace(temporary, archive_path)


def _read_archive(archive_path: str) -> dict[str, tuple[float, float]]:
    if not os.path.exists(archive_path):
        return {}
    entries = MmapedDict.read_all_values_from_file(archive_path)
    return {key: (value, stamp) for key, value, stamp in values_of(entries)}


def merge_sample(kind: str, old: tuple[float, float] | None, new: tuple[float, float]):
    """The archived (value, timestamp) of one sample after a dead process's `new` one."""
    if old is None:
        return new
    if kind in _ADD:
        return (old[0] + new[0], new[1])
    return _KEEP[kind](old, new)


def values_of(entries) -> list[tuple[str, float, float]]:
    """(key, value, timestamp) of prometheus_client's (key, value, timestamp, position)."""
    return [(key, value, stamp) for key, value, stamp, _ in entries]
