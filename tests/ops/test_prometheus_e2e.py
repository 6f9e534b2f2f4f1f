"""End to end: a real Prometheus scrapes the real supervisor while traffic flows through it,
and every dashboard query and alert expression is evaluated through Prometheus's HTTP API.

A dashboard panel that shows nothing is a failed test: each dashboard query must return at
least one sample that is a number. Each alert expression must parse and evaluate, and every
rule Prometheus loaded must report healthy. The traffic includes invalid messages, so that
dead-letter series exist.

Needs the Pub/Sub emulator and the Debian `prometheus` package's binary; skips without them
unless MINISCAN_REQUIRE_EMULATOR=1.
"""

from __future__ import annotations

import json
import math
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from ops_support import (
    ALERTS,
    alert_rules,
    dashboard_expressions,
    load_dashboard,
    query_variables,
    render_local_prometheus_config,
    require_tool,
    substitute_grafana_variables,
    variable_selector,
)
from supervisor_harness import RunningSupervisor

from broker import client
from scanner.generate import scan_payloads
from testkit.emulator import free_port
from testkit.scrape import fetch
from testkit.waiting import wait_until

pytestmark = pytest.mark.emulator

SCRAPE_INTERVAL = "1s"
BURST = 2000  # valid messages published up front: a backlog, so batches are full
TRICKLE_PER_SECOND = 100  # then a steady stream, so rates are non-zero while we query
# Each has its own dead-letter reason: invalid_json, not_an_object, missing_field:port.
INVALID_PAYLOADS = (b"not json", b"[1, 2]", b'{"ip": "1.1.1.1"}')
INVALID_EVERY = 25  # one invalid message per this many valid ones


class PrometheusQueryError(AssertionError):
    """Prometheus refused an expression (it does not parse or cannot be evaluated)."""


def prometheus_api(base_url: str, path: str, params: dict[str, str]) -> Any:
    """`data` of a Prometheus HTTP API answer to a GET."""
    url = f"{base_url}{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            answer = json.load(response)
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            answer = json.loads(body)
        except ValueError:
            answer = {"errorType": f"HTTP {exc.code}", "error": body.decode(errors="replace")}
    if answer.get("status") != "success":
        raise PrometheusQueryError(f"{answer.get('errorType')}: {answer.get('error')}")
    return answer["data"]


def instant_query(base_url: str, expr: str) -> list[dict[str, Any]]:
    data = prometheus_api(base_url, "/api/v1/query", {"query": expr})
    if data["resultType"] == "scalar":
        return [{"metric": {}, "value": data["result"]}]
    return data["result"]


def start_prometheus(tmp_path: Path, metrics_target: str) -> tuple[subprocess.Popen, str]:
    """Prometheus on a free loopback port scraping `metrics_target` every second."""
    config = tmp_path / "prometheus.yml"
    config.write_text(render_local_prometheus_config(metrics_target, SCRAPE_INTERVAL))
    port = free_port()
    log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115 - the child holds it
    process = subprocess.Popen(
        [
            require_tool("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    log.close()
    return process, f"http://127.0.0.1:{port}"


class Traffic:
    """Publishes a burst of valid scans, then a steady stream, with invalid messages mixed in."""

    def __init__(self, project: str, topic: str) -> None:
        self.publisher = client.publisher_client()
        self.topic_path = self.publisher.topic_path(project, topic)
        self.stop = threading.Event()
        self.futures: list[Future] = []
        self.thread = threading.Thread(target=self._run, name="traffic", daemon=True)

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        self.publisher.stop()  # sends what is still batched; publish() is refused from now on

    def published(self) -> int:
        """Messages published so far; raises if any publish failed."""
        done = [future for future in self.futures[:] if future.done()]
        for future in done:
            future.result()
        return len(done)

    def _payloads(self) -> Iterator[bytes]:
        invalid = 0
        for index, payload in enumerate(scan_payloads(seed=None, count=0)):
            yield payload
            if index % INVALID_EVERY == 0:
                yield INVALID_PAYLOADS[invalid % len(INVALID_PAYLOADS)]
                invalid += 1

    def _run(self) -> None:
        payloads = self._payloads()
        for _ in range(BURST):
            self.futures.append(self.publisher.publish(self.topic_path, next(payloads)))
        tick = 0.1
        # Event.wait paces the stream and returns at once when the test stops it.
        while not self.stop.wait(tick):
            for _ in range(int(TRICKLE_PER_SECOND * tick)):
                self.futures.append(self.publisher.publish(self.topic_path, next(payloads)))


@pytest.fixture
def prometheus_binary() -> str:
    return require_tool("prometheus")


def test_every_dashboard_query_and_alert_expression_works_against_live_metrics(
    pubsub_target, tmp_path, prometheus_binary
):
    supervisor = RunningSupervisor(pubsub_target, tmp_path / "x.db", tmp_path / "supervisor.log")
    metrics_target = f"{supervisor.options.metrics_host}:{supervisor.metrics_port}"
    prometheus, prometheus_url = None, ""
    supervisor_exit = None
    try:
        with Traffic(pubsub_target.project, pubsub_target.topic) as traffic:
            ready = supervisor.wait_ready(60)
            assert ready, "the supervisor never got ready:\n" + supervisor.log()[-3000:]
            prometheus, prometheus_url = start_prometheus(tmp_path, metrics_target)
            prometheus_log = tmp_path / "prometheus.log"
            wait_for_http_ok(prometheus, prometheus_log, f"{prometheus_url}/-/ready", 30)
            wait_for_scraped_traffic(prometheus_url, traffic)

            check_every_dashboard_query_returns_numbers(prometheus_url)
            check_dashboard_variables_have_values(prometheus_url)
            check_every_alert_expression_evaluates(prometheus_url)
    finally:
        if prometheus is not None:
            prometheus.kill()
            prometheus.wait()
        supervisor_exit = supervisor.stop(timeout=60)  # and kills its group, should it hang
    assert supervisor_exit == 0, supervisor.log()[-3000:]


def wait_for_http_ok(process: subprocess.Popen, log_path: Path, url: str, timeout: float) -> None:
    """Until `url` answers 200; fails at once, with the log's tail, if `process` exits."""

    def answers_ok() -> bool:
        if process.poll() is not None:  # e.g. a refused option, config or rule file
            raise AssertionError(
                f"{Path(process.args[0]).name} exited with {process.returncode}:\n"
                + log_path.read_text(errors="replace")[-3000:]
            )
        return fetch(url, timeout=5)[0] == 200

    wait_until(answers_ok, timeout, f"{url} to answer 200")


def wait_for_scraped_traffic(prometheus_url: str, traffic: Traffic) -> None:
    """Until stored and dead-lettered messages show, and every series has 3+ recent samples.

    Three samples inside the 15 s that stands in for $__rate_interval make every rate() and
    increase() on the dashboard defined.
    """

    def scraped() -> bool:
        traffic.published()  # surfaces a failed publish instead of a silent timeout
        checks = (
            'sum(miniscan_messages_stored_total{job="miniscan"}) > 0',
            'sum(miniscan_messages_dead_lettered_total{job="miniscan"}) > 0',
        )
        if not all(instant_query(prometheus_url, check) for check in checks):
            return False
        recent = instant_query(prometheus_url, '{job="miniscan", __name__=~"miniscan_.+"}[15s]')
        return min(len(series["values"]) for series in recent) >= 3

    wait_until(scraped, 60, "Prometheus to scrape stored and dead-lettered messages")


def check_every_dashboard_query_returns_numbers(prometheus_url: str) -> None:
    failures = []
    expressions = dashboard_expressions(load_dashboard())
    assert expressions
    for where, expr in expressions:
        query = substitute_grafana_variables(expr)
        try:
            result = instant_query(prometheus_url, query)
        except PrometheusQueryError as exc:
            failures.append(f"{where}: {exc}\n    {query}")
            continue
        values = [float(sample["value"][1]) for sample in result]
        if not values:
            failures.append(f"{where}: no data\n    {query}")
        elif all(math.isnan(value) for value in values):
            failures.append(f"{where}: only NaN\n    {query}")
    assert not failures, "dashboard queries that would show nothing:\n" + "\n".join(failures)


def check_dashboard_variables_have_values(prometheus_url: str) -> None:
    for variable in query_variables(load_dashboard()):
        series = prometheus_api(
            prometheus_url, "/api/v1/series", {"match[]": variable_selector(variable)}
        )
        assert series, f"${variable['name']} would offer no values"


def check_every_alert_expression_evaluates(prometheus_url: str) -> None:
    """Prometheus loaded every rule of alerts.yml, each evaluates, none is firing."""
    expected = {rule["alert"]: rule["expr"] for rule in alert_rules()}

    def evaluated_rules() -> list[dict[str, Any]] | None:
        groups = prometheus_api(prometheus_url, "/api/v1/rules", {})["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        evaluated = all(rule.get("lastEvaluation", "").startswith("20") for rule in rules)
        return rules if rules and evaluated else None

    rules = wait_until(evaluated_rules, 30, f"Prometheus to evaluate the rules of {ALERTS}")
    assert {rule["name"] for rule in rules} == set(expected)
    for rule in rules:
        assert rule["health"] == "ok", f"{rule['name']}: {rule.get('lastError')}"
        instant_query(prometheus_url, rule["query"])  # raises if it does not parse
        # Healthy traffic: nothing may fire, and RestartStorm has no `for` to hide behind.
        assert rule["state"] != "firing", f"{rule['name']} fires on a healthy pipeline"
