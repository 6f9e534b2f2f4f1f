"""The shared directory in which every process of the tree writes its Prometheus samples.

Owns: creating PROMETHEUS_MULTIPROC_DIR and clearing the sample files of an earlier run
before anything imports prometheus_client, because prometheus_client picks its value store
once, at import time; children inherit the variable when they are spawned. Clearing at start
is what the prometheus_client multiprocess docs require: stale files from an earlier run
would add their counts to ours. At exit, `remove_metrics_dir` removes a directory made here
and clears an operator's of sample files (issue 25: the temporary ones piled up in /tmp).

Never: import prometheus_client (that would freeze the single-process value store), or
remove anything but prometheus_client's own sample files: an operator may point the
variable at a folder that holds other things (issue 12: it once removed the whole folder).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from typing import NamedTuple

ENV = "PROMETHEUS_MULTIPROC_DIR"
# prometheus_client names its files `<type>_<pid>.db`, gauges `gauge_<mode>_<pid>.db`
# (prometheus_client/values.py).
SAMPLE_FILE = re.compile(r"(counter|histogram|summary|gauge_[a-z]+)_\d+\.db")


class MetricsDir(NamedTuple):
    path: str
    made_here: bool  # a temporary directory of ours, removed at exit; else the operator's


def prepare_metrics_dir() -> MetricsDir:
    """Point PROMETHEUS_MULTIPROC_DIR at a directory without stale samples and return it.

    An operator-provided directory is created if missing and cleared of sample files only;
    otherwise a fresh temporary one is made.
    """
    path = os.environ.get(ENV)
    if not path:
        path = tempfile.mkdtemp(prefix="miniscan-metrics-")
        os.environ[ENV] = path
        return MetricsDir(path, made_here=True)
    os.makedirs(path, exist_ok=True)
    _remove_sample_files(path)
    return MetricsDir(path, made_here=False)


def remove_metrics_dir(metrics_dir: MetricsDir) -> None:
    """At exit, once every child is gone: remove our directory, or clear the operator's."""
    if metrics_dir.made_here:
        shutil.rmtree(metrics_dir.path, ignore_errors=True)
    elif os.path.isdir(metrics_dir.path):
        _remove_sample_files(metrics_dir.path)


def _remove_sample_files(path: str) -> None:
    for entry in os.scandir(path):
        if SAMPLE_FILE.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
            os.unlink(entry.path)
