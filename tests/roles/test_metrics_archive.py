"""A child restarted 200 times leaves a bounded metrics directory and the same totals
(issue 25): each dead incarnation's samples are folded into the archive when it is reaped.

Each incarnation is a real forked process writing through prometheus_client's multiprocess
value store; the run happens in a fresh interpreter, because prometheus_client picks its
value store once, at import, from PROMETHEUS_MULTIPROC_DIR.
"""

from __future__ import annotations

import json
import subprocess
import sys

RESTARTS = 200

SCRIPT = r"""
import json, multiprocessing, os, sys
os.environ["PROMETHEUS_MULTIPROC_DIR"] = sys.argv[1]
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess
from supervisor.http import TolerantCollector
from supervisor.metrics_archive import archive_dead_process

handled = Counter("t_handled", "messages", ["role"])
latency = Histogram("t_latency_seconds", "latency", buckets=(1, 10))
newest = Gauge("t_newest", "newest commit", multiprocess_mode="max")
depth = Gauge("t_depth", "in flight", multiprocess_mode="livesum")

def incarnation(i):
    handled.labels("decoder").inc(i + 1)
    latency.observe(i % 20)
    newest.set(i)
    depth.set(5)

restarts, archive = int(sys.argv[2]), sys.argv[3] == "archive"
fork = multiprocessing.get_context("fork")
for i in range(restarts):
    child = fork.Process(target=incarnation, args=(i,))
    child.start()
    child.join()
    if archive:
        archive_dead_process(child.pid)
    else:
        multiprocess.mark_process_dead(child.pid)
registry = CollectorRegistry()
TolerantCollector(registry)
totals = {s.name + json.dumps(s.labels, sort_keys=True): s.value
          for metric in registry.collect() for s in metric.samples}
print(json.dumps({"totals": totals, "files": sorted(os.listdir(sys.argv[1])),
                  "pid": os.getpid()}))
"""


def run(tmp_path, how: str) -> dict:
    folder = tmp_path / how
    folder.mkdir()
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(folder), str(RESTARTS), how],
                          capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    return json.loads(done.stdout)


def test_200_restarts_keep_the_totals_in_a_bounded_number_of_files(tmp_path):
    archived = run(tmp_path, "archive")
    totals = archived["totals"]
    assert totals['t_handled_total{"role": "decoder"}'] == RESTARTS * (RESTARTS + 1) / 2
    assert totals["t_latency_seconds_count{}"] == RESTARTS
    assert totals["t_latency_seconds_sum{}"] == sum(i % 20 for i in range(RESTARTS))
    assert totals['t_latency_seconds_bucket{"le": "1.0"}'] == 2 * RESTARTS / 20
    assert totals["t_newest{}"] == RESTARTS - 1
    assert "t_depth{}" not in totals or totals["t_depth{}"] == 0  # nobody alive holds any
    # Left: the archives (pid 0) and the files of the process still alive, nothing else.
    pids = {name.rsplit("_", 1)[1] for name in archived["files"]}
    assert pids == {"0.db", f"{archived['pid']}.db"}, archived["files"]
    assert len(archived["files"]) == 6  # counter, histogram and max gauge: archive and live
    # The same totals as when every dead process's files are kept (what was done before).
    kept = run(tmp_path, "keep")
    assert len(kept["files"]) >= 3 * RESTARTS
    assert kept["totals"] == totals
