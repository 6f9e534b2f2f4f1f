"""Large-message benchmark: the tree's peak memory with multi-MiB messages in the backlog.

Issue 12 found 400 messages with a 2 MiB response among 2,000 normal ones crashing the
decoders, and with that fixed the tree peaking at 0.8-1.0 GiB, growing with the backlog.
This publishes backlogs of normal scans plus LARGE messages (half 900 KiB responses, stored;
half 2 MiB responses, dead-lettered as too large), drains each with `miniscan-supervisor
--workers 2` and every other flag at its default, and prints the tree's peak RSS (summed
over the supervisor and its children, sampled every 100 ms, each process's own kernel peak
kept) against the 600 MiB target and against the same tree's RSS when idle in the same run
(the reference). Peaks must stay flat as the large messages grow from the first backlog to
the last. Exit 1 on a wrong count (a message neither stored nor dead-lettered).

    .venv/bin/python bench/large_messages.py [--large 100,200,400] [--normal 2000]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from e2e_procs import TreeSampler
from e2e_pubsub import create_target, delete_target, publish_backlog

from scanner.generate import scan_payloads
from store.sqlite.reader import open_reader
from testkit.emulator import start_emulator
from testkit.launch import LaunchOptions, launch_supervisor

TARGET_MIB = 600
STORED_RESPONSE = 900 * 1024  # under the 1 MiB response cap: stored
TOO_LARGE_RESPONSE = 2 * 1024 * 1024  # over it: dead-lettered with its whole payload


def large_payload(i: int) -> bytes:
    size = STORED_RESPONSE if i % 2 == 0 else TOO_LARGE_RESPONSE
    text = (f"large response {i} " * (size // 16 + 1))[:size]
    scan = {"ip": f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}", "port": 443,
            "service": "HTTP", "timestamp": 1_700_000_000 + i, "data_version": 1,
            "data": {"response_bytes_utf8": base64.b64encode(text.encode()).decode()}}  # fmt: skip
    return json.dumps(scan).encode()


def counts(db_path: str) -> tuple[int, int]:
    try:
        conn = open_reader(db_path)
    except Exception:
        return 0, 0
    try:
        scans = conn.execute("SELECT count(*) FROM scans").fetchone()[0]
        letters = conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
        return scans, letters
    finally:
        conn.close()


def run_one(emulator_host: str, workdir: Path, normal: int, large: int) -> dict:
    target = create_target(f"large-{large}")
    normal_payloads = list(scan_payloads(seed=large, count=normal, ips="172.16.0.0/16"))
    large_payloads = [large_payload(i) for i in range(large)]
    # Interleave, so that large messages arrive among normal ones, as in production.
    step = max(1, normal // max(1, large))
    payloads: list[bytes] = []
    for i, payload in enumerate(normal_payloads):
        payloads.append(payload)
        if i % step == 0 and large_payloads:
            payloads.append(large_payloads.pop())
    payloads += large_payloads
    published = publish_backlog(target, payloads)
    db_path = str(workdir / f"large-{large}.db")
    settings = LaunchOptions(emulator_host, db_path, project=target.project,
                                  subscription=target.subscription, workers=2)  # fmt: skip
    supervisor = launch_supervisor(settings, workdir / f"supervisor-{large}.log")
    sampler = TreeSampler(supervisor.process.pid).start()
    try:
        if not supervisor.wait_ready(120):
            raise SystemExit(f"supervisor not ready: {supervisor.log()[-2000:]}")
        sampler.sample()
        idle_mib = sampler.peak_tree_rss_kib / 1024
        started = time.monotonic()
        deadline = started + 600
        while time.monotonic() < deadline:
            if supervisor.metrics().get("miniscan_messages_acked_total", 0) >= published:
                break
            time.sleep(0.5)
        took = time.monotonic() - started
        code = supervisor.stop()
    finally:
        sampler.stop()
        supervisor.kill()
    scans, letters = counts(db_path)
    delete_target(target)
    return {
        "large": large, "normal": normal, "published": published, "scans": scans,
        "letters": letters, "idle_mib": idle_mib, "peak_mib": sampler.peak_tree_rss_kib / 1024,
        "seconds": took, "exit": code,
        "per_process": sorted(((f.name, f.peak_rss_kib // 1024) for f in sampler.figures()),
                              key=lambda item: -item[1])[:6],
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", default="100,200,400")
    parser.add_argument("--normal", type=int, default=2000)
    args = parser.parse_args()
    sizes = [int(x) for x in args.large.split(",")]
    emulator = start_emulator()
    os.environ["PUBSUB_EMULATOR_HOST"] = emulator.host
    results = []
    try:
        with tempfile.TemporaryDirectory(prefix="miniscan-large-") as workdir:
            for large in sizes:
                print(f"backlog: {args.normal} normal + {large} large ...", file=sys.stderr)
                results.append(run_one(emulator.host, Path(workdir), args.normal, large))
    finally:
        emulator.stop()
    wrong = False
    print("| large messages | published | stored | dead-lettered | drain s | idle tree MiB "
          "| peak tree MiB | peak / 600 MiB target | exit |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        expected_letters = r["large"] // 2
        ok = r["letters"] == expected_letters and r["scans"] + r["letters"] <= r["published"]
        wrong |= not ok or r["exit"] != 0
        print(f"| {r['large']} | {r['published']} | {r['scans']} | {r['letters']} "
              f"| {r['seconds']:.1f} | {r['idle_mib']:.0f} | {r['peak_mib']:.0f} "
              f"| {r['peak_mib'] / TARGET_MIB:.2f} | {r['exit']} |")  # fmt: skip
    print()
    for r in results:
        print(f"large={r['large']}: biggest processes (peak MiB): {r['per_process']}")
    peaks = [r["peak_mib"] for r in results]
    print(f"\npeak growth from {sizes[0]} to {sizes[-1]} large messages: "
          f"{peaks[-1] / peaks[0]:.2f}x (flat is ~1.0); target {TARGET_MIB} MiB: "
          f"{'met' if max(peaks) < TARGET_MIB else 'MISSED'}")  # fmt: skip
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
