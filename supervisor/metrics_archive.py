"""Fold a dead child's Prometheus samples into one archive, so the directory stays bounded.

Owns: `archive_dead_process(pid)`, which the supervisor calls when it reaps a child, and
`ARCHIVE_LOCK`, which the scrape holds while it reads the directory. prometheus_client's
multiprocess mode keeps one file per process and type (`counter_<pid>.db`, ...) and its
`mark_process_dead` removes only live gauges: every restarted child left its counters and
histograms behind for good, and every scrape read them all (issue 25). Here the dead
process's values are added into files of pid ARCHIVE_PID (0, the kernel's, never a child's),
in prometheus_client's own file format, so its collector reads the archive like any other
process's file and the totals stay what they were; then the dead files are removed.

How each kind merges: counters, histograms (their files hold per-bucket counts, summed by
the collector) and summaries add; gauges keep their mode's rule (sum adds, max and min
keep the extreme, mostrecent keeps the newer timestamp); live gauges are dropped, as
`mark_process_dead` does; `all` gauges carry the pid as a label, so they are left alone.

Never: touch a live process's files, or anything but prometheus_client's sample files.
"""

from __future__ import annotations

import os
import struct
import threading

from prometheus_client import multiprocess
from prometheus_client.mmap_dict import MmapedDict

from supervisor.metrics_dir import ENV

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
    """Merge the dead process `pid`'s samples into the archive files and remove its own."""
    path = path or os.environ.get(ENV)
    if not path or pid == ARCHIVE_PID:
        return
    with ARCHIVE_LOCK:
        multiprocess.mark_process_dead(pid, path)  # its live gauges: dropped
        for kind in (*_ADD, *_KEEP):
            dead = os.path.join(path, f"{kind}_{pid}.db")
            if os.path.exists(dead):
                _merge_file(dead, os.path.join(path, f"{kind}_{ARCHIVE_PID}.db"), kind)
                os.unlink(dead)


def _merge_file(dead: str, archive_path: str, kind: str) -> None:
    try:
        values = MmapedDict.read_all_values_from_file(dead)
    except (OSError, ValueError, struct.error):
        return  # a file the child was still creating when it died holds nothing yet
    archive = MmapedDict(archive_path)
    try:
        kept = {key: (value, stamp) for key, value, stamp in archive.read_all_values()}
        for key, value, stamp in values_of(values):
            if kind in _ADD:
                kept[key] = (kept.get(key, (0.0, 0.0))[0] + value, stamp)
            elif key in kept:
                kept[key] = _KEEP[kind](kept[key], (value, stamp))
            else:
                kept[key] = (value, stamp)
            archive.write_value(key, *kept[key])
    finally:
        archive.close()


def values_of(entries) -> list[tuple[str, float, float]]:
    """(key, value, timestamp) of prometheus_client's (key, value, timestamp, position)."""
    return [(key, value, stamp) for key, value, stamp, _ in entries]
