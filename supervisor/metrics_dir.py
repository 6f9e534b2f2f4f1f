"""The shared directory in which every process of the tree writes its Prometheus samples.

Owns: creating (and wiping) PROMETHEUS_MULTIPROC_DIR before anything imports
prometheus_client, because prometheus_client picks its value store once, at import time;
children inherit the variable when they are spawned. Wiping at start is what the
prometheus_client multiprocess docs require: stale files from an earlier run would add their
counts to ours.

Never: import prometheus_client (that would freeze the single-process value store).
"""

from __future__ import annotations

import os
import shutil
import tempfile

ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_metrics_dir() -> str:
    """Point PROMETHEUS_MULTIPROC_DIR at an empty directory and return it.

    An operator-provided directory is emptied (it is ours for this run); otherwise a fresh
    temporary one is made.
    """
    path = os.environ.get(ENV)
    if path:
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path, exist_ok=True)
    else:
        path = tempfile.mkdtemp(prefix="miniscan-metrics-")
        os.environ[ENV] = path
    return path
