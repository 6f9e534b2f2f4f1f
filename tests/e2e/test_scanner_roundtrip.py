"""What the scanner publishes can be pulled back from the real emulator, field by field.

Covers the published stream (every field, both versions), --seed, --rate, --from-file with
a bad line, progress and -q, Ctrl-C on a `--count 0` run, and a broker lost mid-run.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from google.api_core import exceptions as gexc

from broker import client
from scanner import cli, generate, publish
from scanner.publish import PublishFailed, ScanPublisher
from testkit.emulator import start_emulator

pytestmark = pytest.mark.emulator

SCANNER_SCRIPT = Path(sys.executable).with_name("miniscan-scanner")
PUBLISHED = re.compile(r"published (\d+) messages to \S+ in ([\d.]+)s")


class SubscriptionReader:
    """Pulls and acks from the target's subscription, keeping every distinct message."""

    def __init__(self, target) -> None:
        self._subscriber = client.subscriber_client()
        self._path = self._subscriber.subscription_path(target.project, target.subscription)
        self.by_id: dict[str, bytes] = {}

    def pull_until(self, expected: int, timeout_s: float = 30.0) -> list[bytes]:
        """Pull until `expected` distinct messages arrived in all, then once more at once, so
        that a message beyond `expected` shows up too."""
        deadline = time.monotonic() + timeout_s
        while len(self.by_id) < expected and time.monotonic() < deadline:
            self._pull_once(return_immediately=False)
        self._pull_once(return_immediately=True)
        return list(self.by_id.values())

    def _pull_once(self, return_immediately: bool) -> None:
        request = {
            "subscription": self._path,
            "max_messages": 1000,
            "return_immediately": return_immediately,
        }
        with warnings.catch_warnings():  # return_immediately is deprecated, not for emulators
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                received = self._subscriber.pull(request=request, timeout=10).received_messages
            except gexc.DeadlineExceeded:
                return
        if received:
            ack_ids = [r.ack_id for r in received]
            self._subscriber.acknowledge(request={"subscription": self._path, "ack_ids": ack_ids})
        self.by_id.update((r.message.message_id, r.message.data) for r in received)

    def close(self) -> None:
        self._subscriber.close()


def pull_messages(target, expected: int) -> list[bytes]:
    reader = SubscriptionReader(target)
    try:
        return reader.pull_until(expected)
    finally:
        reader.close()


def run_scanner(target, *args: str) -> tuple[int, str]:
    """The scanner command in-process against the target topic: (exit code, stderr)."""
    result = CliRunner().invoke(
        cli.main, ["--project", target.project, "--topic", target.topic, *args]
    )
    assert "Traceback" not in result.output
    return result.exit_code, result.stderr


def decoded_response(scan: dict) -> str:
    if scan["data_version"] == 1:
        return base64.b64decode(scan["data"]["response_bytes_utf8"], validate=True).decode()
    return scan["data"]["response_str"]


def test_the_published_stream_round_trips_field_by_field(pubsub_target):
    sent = list(generate.scan_payloads(seed=99, count=300))
    published = publish.publish_payloads(
        pubsub_target.project, pubsub_target.topic, iter(sent), rate=None
    )
    assert published == 300
    pulled = pull_messages(pubsub_target, 300)
    assert Counter(pulled) == Counter(sent)
    network = ipaddress.ip_network(generate.DEFAULT_CIDR)
    versions = Counter()
    for payload in pulled:
        scan = json.loads(payload)
        assert list(scan) == ["ip", "port", "service", "timestamp", "data_version", "data"]
        assert ipaddress.ip_address(scan["ip"]) in network
        assert scan["port"] in generate.SERVICE_PORTS[scan["service"]]
        assert generate.SEEDED_START_TIME <= scan["timestamp"] < generate.SEEDED_START_TIME + 300
        assert re.fullmatch(r"service response: \d+", decoded_response(scan))
        versions[scan["data_version"]] += 1
    assert set(versions) == {1, 2}


def test_unseeded_scans_carry_the_current_time(pubsub_target):
    before = int(time.time())
    exit_code, _ = run_scanner(pubsub_target, "--count", "20", "--rate", "0")
    after = int(time.time())
    assert exit_code == 0
    timestamps = [json.loads(p)["timestamp"] for p in pull_messages(pubsub_target, 20)]
    assert len(timestamps) == 20
    assert all(before <= t <= after for t in timestamps)


def test_the_same_seed_publishes_the_same_stream_twice(pubsub_target):
    for _ in range(2):
        exit_code, stderr = run_scanner(
            pubsub_target, "--seed", "42", "--count", "50", "--rate", "0"
        )
        assert exit_code == 0
        assert PUBLISHED.search(stderr).group(1) == "50"
    pulled = Counter(pull_messages(pubsub_target, 100))
    expected = list(generate.scan_payloads(seed=42, count=50))
    assert pulled == Counter(expected * 2)


def test_the_rate_flag_paces_publishing(pubsub_target):
    exit_code, stderr = run_scanner(pubsub_target, "--rate", "2000", "--count", "4000", "-q")
    assert exit_code == 0
    count, elapsed = PUBLISHED.search(stderr).groups()
    assert int(count) == 4000
    assert 1.5 <= float(elapsed) <= 15.0  # 4,000 at 2,000/s: about 2 s
    assert len(pull_messages(pubsub_target, 4000)) == 4000


def test_the_rate_measured_from_outside(pubsub_target):
    publisher = ScanPublisher(pubsub_target.project, pubsub_target.topic)
    publisher.connect()
    started = time.monotonic()
    publisher.run(generate.scan_payloads(seed=1, count=1500), rate=1000.0)
    assert publisher.flush() == 1500
    assert 1.2 <= time.monotonic() - started <= 15.0  # 1,500 at 1,000/s: about 1.5 s


def test_from_file_publishes_good_lines_and_reports_the_bad_one(pubsub_target, tmp_path):
    good = list(generate.scan_payloads(seed=5, count=3))
    scans = tmp_path / "scans.jsonl"
    scans.write_bytes(b"\n".join([good[0], good[1], b'{"ip": "1.1.1.1", "port"', b"", good[2]]))
    exit_code, stderr = run_scanner(pubsub_target, "--from-file", str(scans), "--rate", "0")
    assert exit_code == 0
    assert f"{scans}: skipped line 3: not valid JSON" in stderr
    assert f"skipped 1 malformed line(s) of {scans}" in stderr
    assert PUBLISHED.search(stderr).group(1) == "3"
    assert Counter(pull_messages(pubsub_target, 3)) == Counter(good)


def test_progress_lines_appear_unless_quiet(pubsub_target):
    args = ["--count", "40", "--rate", "100", "--progress-every", "0.1"]
    exit_code, stderr = run_scanner(pubsub_target, *args)
    assert exit_code == 0
    assert len(re.findall(r"^published \d+ \(\d+/s recently", stderr, re.M)) >= 2
    exit_code, stderr = run_scanner(pubsub_target, *args, "-q")
    assert exit_code == 0
    assert re.findall(r"^published \d+ \(", stderr, re.M) == []
    assert PUBLISHED.search(stderr).group(1) == "40"


def test_ctrl_c_flushes_and_prints_exactly_what_was_published(pubsub_target):
    assert SCANNER_SCRIPT.exists(), "install the package: pip install -e '.[dev]'"
    reader = SubscriptionReader(pubsub_target)
    process = subprocess.Popen(
        [str(SCANNER_SCRIPT), "--project", pubsub_target.project, "--topic",
         pubsub_target.topic, "--count", "0", "--rate", "3000", "-q"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert reader.pull_until(1), "nothing was published"
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr
        assert "Traceback" not in stderr
        assert stdout == ""
        summary = r"stopped: published (\d+) messages to \S+ in [\d.]+s \(\d+/s\)\n"
        match = re.fullmatch(summary, stderr)
        assert match, stderr
        printed = int(match.group(1))
        assert printed > 0
        assert len(reader.pull_until(printed)) == printed
    finally:
        reader.close()
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_losing_the_broker_mid_run_fails_with_a_count_not_a_hang(pubsub_emulator, monkeypatch):
    emulator = start_emulator()
    try:
        monkeypatch.setenv("PUBSUB_EMULATOR_HOST", emulator.host)
        publisher = ScanPublisher("test-project", "doomed-topic", connect_timeout_s=5,
                                  publish_deadline_s=2)  # fmt: skip
        publisher.connect()

        def kill_broker_once_publishing() -> None:
            deadline = time.monotonic() + 20
            while publisher.published < 20 and time.monotonic() < deadline:
                time.sleep(0.01)
            emulator.stop()

        killer = threading.Thread(target=kill_broker_once_publishing)
        killer.start()
        started = time.monotonic()
        with pytest.raises(PublishFailed) as caught:
            try:
                publisher.run(generate.scan_payloads(1, 0), rate=200.0)
            finally:
                publisher.flush(timeout_s=20)
        killer.join(timeout=30)
        assert time.monotonic() - started < 30
        assert caught.value.published >= 20
        assert "\n" not in str(caught.value)
    finally:
        emulator.stop()
