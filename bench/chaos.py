"""Chaos benchmark: minutes of random faults under load, and a count of what was lost (0).

One `miniscan-supervisor --workers 2` reaches the Pub/Sub emulator through the test suite's
fault proxy (tests/fault_proxy.py) while a paced publisher feeds it a workload whose final
table is known, poison messages included. For `--seconds`, at random intervals, one of these
happens (each kind once per round of five, in random order): a decoder is SIGKILLed, the
writer is SIGKILLed, the network to Pub/Sub is cut for 2-10 s (every connection reset, new
ones refused), it becomes a blackhole for 2-10 s, or the database has weather for 2-15 s
(issue 25): with `--store sqlite` another connection holds its write lock, with `--store
postgres` (a throw-away cluster of testkit.postgres_cluster) the server crashes (`pg_ctl -m
immediate`) and is started again on the same data.
Then the faults stop, the tree drains, and the benchmark prints messages published, stored
rows against the expected table, dead letters against the poison published, redeliveries
(pulls beyond the messages published), restarts, and lost (expected rows missing or wrong,
plus poison not dead-lettered): it must be 0, and the exit code is 1 otherwise.

    .venv/bin/python bench/chaos.py [--seconds 180] [--rate 150] [--seed 1]
                                    [--store sqlite|postgres]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import apsw

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from fault_proxy import FaultProxy  # noqa: E402

from broker import admin, client  # noqa: E402
from scanner.workload import build_workload, rows_wrong  # noqa: E402
from testkit.emulator import start_emulator  # noqa: E402
from testkit.launch import LaunchOptions, launch_supervisor  # noqa: E402
from testkit.postgres_cluster import Cluster, start_cluster  # noqa: E402
from testkit.table import count_dead_letters, read_table  # noqa: E402

PROJECT = "test-project"
FAULTS = ("kill decoder", "kill writer", "cut network", "blackhole network", "database weather")


class Publisher(threading.Thread):
    def __init__(self, topic_path: str, payloads: list[bytes], rate: float):
        super().__init__(daemon=True)
        self.topic_path, self.payloads, self.rate = topic_path, payloads, rate
        self.published = 0

    def run(self) -> None:
        publisher = client.publisher_client()
        started = time.monotonic()
        futures = []
        for i, payload in enumerate(self.payloads):
            futures.append(publisher.publish(self.topic_path, payload))
            delay = started + i / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        for future in futures:
            future.result(timeout=300)
            self.published += 1


def database_weather(db: str, cluster: Cluster | None) -> tuple[str, Callable[[], None],
                                                               Callable[[], None]]:  # fmt: skip
    """(what, begin, end) of this store's weather: a PostgreSQL crash and restart on the same
    data, or a SQLite write lock held by another connection."""
    if cluster is not None:
        return "PostgreSQL crashed", cluster.crash, cluster.restart
    holder: list[apsw.Connection] = []

    def hold() -> None:
        holder.append(apsw.Connection(db))
        holder[-1].execute("BEGIN IMMEDIATE")

    def release() -> None:
        holder.pop().close()  # closing rolls the transaction back

    return "SQLite write lock held", hold, release


def inject(fault: str, supervisor, proxy: FaultProxy, rng: random.Random,
           weather: tuple[str, Callable[[], None], Callable[[], None]]) -> str:  # fmt: skip
    spawned = supervisor.spawned()
    latest = {name: pid for name, pid in spawned}  # the last spawn of each name
    if fault == "kill decoder":
        name = rng.choice(sorted(n for n in latest if n.startswith("decoder")))
        _kill(latest[name])
        return f"SIGKILL {name}"
    if fault == "kill writer":
        _kill(latest["writer"])
        return "SIGKILL writer"
    if fault == "database weather":
        what, begin, end = weather
        seconds = rng.uniform(2, 15)
        begin()
        time.sleep(seconds)
        end()
        return f"{what} for {seconds:.1f}s"
    seconds = rng.uniform(2, 10)
    (proxy.cut if fault == "cut network" else proxy.blackhole)()
    time.sleep(seconds)
    proxy.restore()
    return f"{fault} for {seconds:.1f}s"


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # it died by itself meanwhile
        os.kill(pid, signal.SIGKILL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--rate", type=float, default=150.0, help="messages published a second")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    messages = int(args.rate * (args.seconds + 20))
    workload = build_workload(messages, keys=max(100, messages // 4), seed=args.seed,
                              poison=max(10, messages // 200))  # fmt: skip
    emulator = start_emulator(project=PROJECT)
    os.environ["PUBSUB_EMULATOR_HOST"] = emulator.host
    proxy = FaultProxy(int(emulator.host.rsplit(":", 1)[1]))
    events: list[str] = []
    cluster = start_cluster() if args.store == "postgres" else None
    try:
        publisher_client, subscriber_client = client.publisher_client(), client.subscriber_client()
        admin.ensure_topic(publisher_client, PROJECT, "chaos-topic")
        admin.ensure_subscription(subscriber_client, PROJECT, "chaos-topic", "chaos-sub")
        subscriber_client.close()
        with tempfile.TemporaryDirectory(prefix="miniscan-chaos-") as workdir:
            db_path = (
                cluster.create_database("chaos") if cluster else str(Path(workdir) / "chaos.db")
            )
            weather = database_weather(db_path, cluster)
            settings = LaunchOptions(proxy.host, db_path, project=PROJECT,
                                          subscription="chaos-sub", workers=2,
                                          extra_args=("--restart-max", "1000"))  # fmt: skip
            supervisor = launch_supervisor(settings, Path(workdir) / "supervisor.log")
            try:
                if not supervisor.wait_ready(120):
                    raise SystemExit(supervisor.log()[-3000:])
                publisher = Publisher(publisher_client.topic_path(PROJECT, "chaos-topic"),
                                      workload.payloads, args.rate)  # fmt: skip
                publisher.start()
                chaos_ends = time.monotonic() + args.seconds
                deck: list[str] = []
                while time.monotonic() < chaos_ends:
                    time.sleep(rng.uniform(3, 12))
                    if not deck:  # every kind of fault once per round, in random order
                        deck = rng.sample(FAULTS, len(FAULTS))
                    kind = deck.pop()
                    event = inject(kind, supervisor, proxy, rng, weather)
                    events.append(kind)
                    print(f"{time.monotonic() - chaos_ends + args.seconds:6.1f}s  {event}",
                          file=sys.stderr)  # fmt: skip
                publisher.join(600)
                drained_by = time.monotonic() + 300
                expected_letters = workload.poison
                while time.monotonic() < drained_by:
                    try:
                        if (rows_wrong(workload.expected, read_table(db_path)) == 0
                                and count_dead_letters(db_path) >= expected_letters):  # fmt: skip
                            break
                    except Exception:
                        pass
                    time.sleep(1)
                metrics = supervisor.metrics()
                code = supervisor.stop()
            finally:
                supervisor.kill()
            table = read_table(db_path)
            letters = count_dead_letters(db_path)
    finally:
        proxy.close()
        emulator.stop()
        if cluster is not None:
            cluster.stop()
    wrong_rows = rows_wrong(workload.expected, table)
    missing_letters = max(0, workload.poison - letters)
    pulled = metrics.get("miniscan_messages_pulled_total", 0)
    restarts = sum(v for k, v in metrics.items() if k.startswith("miniscan_child_restarts_total"))
    lost = wrong_rows + missing_letters
    print(f"store: {args.store}")
    print(
        "| seconds of chaos | faults | published | expected rows | rows wrong or missing "
        "| poison | dead-lettered | pulled | redelivered | restarts | lost | exit |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"| {args.seconds:.0f} | {len(events)} | {publisher.published} "
          f"| {len(workload.expected)} | {wrong_rows} | {workload.poison} | {letters} "
          f"| {pulled:.0f} | {max(0, pulled - publisher.published):.0f} | {restarts:.0f} "
          f"| {lost} | {code} |")  # fmt: skip
    print("\nfaults injected: " + ", ".join(f"{events.count(k)} x {k}" for k in FAULTS))
    return 0 if lost == 0 and code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
