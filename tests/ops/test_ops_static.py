"""Static checks of ops/: Prometheus config and alert rules, Grafana provisioning and dashboard.

Runs the real promtool: `check config` on both Prometheus configs, `check rules` on the alerts,
and `test rules` scenarios that make every alert fire when it should and stay quiet when it
should not. Checks that the dashboard and the alerts only use metric names from the contract
(contracts/metrics.py), that the dashboard covers the whole contract, and that every panel
uses the provisioned datasource.

promtool is the Debian `prometheus` package's (CI installs it). Without it these tests skip,
unless MINISCAN_REQUIRE_EMULATOR=1, which turns a missing tool into a failure.
The readers of ops/ that other tests share live in tests/ops_support.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Any

import pytest
from ops_support import (
    ALERTS,
    DASHBOARD,
    DASHBOARD_PROVIDERS,
    DATASOURCES,
    GRAFANA_VARIABLES,
    PROMETHEUS_CONFIG,
    REPO,
    alert_rules,
    dashboard_expressions,
    dashboard_panels,
    load_dashboard,
    load_yaml,
    query_variables,
    render_local_prometheus_config,
    require_tool,
    substitute_grafana_variables,
    variable_selector,
)

DASHBOARD_UID = "miniscan-overview"  # links and bookmarks to the dashboard depend on it

# The metric-name contract, as exposed (counters with `_total`, histograms by base name).
CONTRACT_COUNTERS = frozenset(
    {
        "miniscan_messages_pulled_total",
        "miniscan_messages_stored_total",
        "miniscan_messages_dead_lettered_total",
        "miniscan_messages_acked_total",
        "miniscan_messages_nacked_total",
        "miniscan_child_restarts_total",
        "miniscan_pubsub_errors_total",
        "miniscan_database_errors_total",
    }
)
CONTRACT_HISTOGRAMS = frozenset(
    {
        "miniscan_batch_size",
        "miniscan_commit_duration_seconds",
        "miniscan_end_to_end_latency_seconds",
    }
)
CONTRACT_GAUGES = frozenset(
    {
        "miniscan_queue_depth",
        "miniscan_children_alive",
        "miniscan_decoders_pulling",
        "miniscan_pull_lag_seconds",
        "miniscan_scans_rows",
        "miniscan_last_commit_timestamp_seconds",
        "miniscan_build_info",
        "miniscan_database_up",
    }
)
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
CONTRACT_SERIES = (
    CONTRACT_COUNTERS
    | CONTRACT_GAUGES
    | {name + suffix for name in CONTRACT_HISTOGRAMS for suffix in HISTOGRAM_SUFFIXES}
)
# Series that Prometheus itself writes for every scrape target.
SCRAPE_SERIES = frozenset({"up"})

_STRING_LITERALS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_LABEL_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NUMBERS = re.compile(r"(?<![\w:])\d[\w.]*")
_IDENTIFIERS = re.compile(r"[A-Za-z_:][\w:]*")
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "inf", "nan"})


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, keywords or labels)."""
    text = _STRING_LITERALS.sub('""', expr)
    for pattern in (_LABEL_MATCHERS, _RANGES, _LABEL_LISTS, _NUMBERS):
        text = pattern.sub(" ", text)
    names = set()
    for match in _IDENTIFIERS.finditer(text):
        is_function = text[match.end() :].lstrip().startswith("(")
        if not is_function and match.group().lower() not in _KEYWORDS:
            names.add(match.group())
    return names


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("promtool"), *args], capture_output=True, text=True, timeout=60
    )


# --- the PromQL name reader itself -------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'histogram_quantile(0.99, sum by (job, le) (rate(a_bucket{x="1"}[5m])))',
            {"a_bucket"},
        ),
        ("(time() - b > 300) and on (job, instance) sum(c) > 0 or vector(0)", {"b", "c"}),
        ('sum without (reason) (d{reason="a}b", le=~"1e3"}) offset 5m / 1e3', {"d"}),
        ("absent(up{job='miniscan'}) unless e:recorded:rate5m", {"up", "e:recorded:rate5m"}),
        ("increase(f[$__range]) * on (role) group_left (version) g", {"f", "g"}),
    ],
)
def test_promql_metric_names_finds_selected_metrics_only(expr, names):
    assert promql_metric_names(expr) == names


def test_substitute_grafana_variables_rejects_unknown_variables():
    assert substitute_grafana_variables("rate(x[$__rate_interval])") == "rate(x[15s])"
    assert substitute_grafana_variables('x{i=~"${instance}"}') == 'x{i=~".*"}'
    with pytest.raises(KeyError):
        substitute_grafana_variables("rate(x[$__rate_intreval])")


# --- Prometheus config and rules --------------------------------------------------------


def test_promtool_accepts_the_compose_prometheus_config():
    result = promtool("check", "config", str(PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout  # the alerts are wired in, not forgotten


def test_promtool_accepts_the_rendered_local_prometheus_config(tmp_path):
    config = tmp_path / "prometheus.yml"
    config.write_text(render_local_prometheus_config("127.0.0.1:9100", "1s"))
    result = promtool("check", "config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout


def test_promtool_accepts_the_alert_rules():
    result = promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_job_is_named_miniscan_in_both_configs(tmp_path):
    rendered = tmp_path / "prometheus.yml"
    rendered.write_text(render_local_prometheus_config("127.0.0.1:9100", "1s"))
    for config in (load_yaml(PROMETHEUS_CONFIG), load_yaml(rendered)):
        assert [job["job_name"] for job in config["scrape_configs"]] == ["miniscan"]


def test_every_alert_has_severity_summary_and_description():
    rules = alert_rules()
    assert rules, "alerts.yml holds no rules"
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), f"duplicate alert names: {names}"
    for rule in rules:
        assert rule.get("labels", {}).get("severity") in {"critical", "warning"}, rule["alert"]
        annotations = rule.get("annotations", {})
        for key in ("summary", "description"):
            assert str(annotations.get(key, "")).strip(), f"{rule['alert']} lacks {key}"


def test_alert_expressions_use_contract_metric_names_only():
    for rule in alert_rules():
        unknown = promql_metric_names(rule["expr"]) - CONTRACT_SERIES - SCRAPE_SERIES
        assert not unknown, f"{rule['alert']} uses metrics outside the contract: {unknown}"


def _series(name: str, labels: dict[str, str], values: str) -> dict[str, str]:
    selector = ", ".join(f'{key}="{value}"' for key, value in labels.items())
    return {"series": f"{name}{{{selector}}}", "values": values}


P1 = {"job": "miniscan", "instance": "p1:9100"}
PUBSUB_ERRORS = "miniscan_pubsub_errors_total"


def _alert_scenarios() -> list[dict[str, Any]]:
    """promtool test groups: each alert fires in its bad case and stays quiet in the good one."""
    critical_p1 = {"severity": "critical", **P1}
    stalled = {"severity": "critical", **P1}
    return [
        {
            "name": "a processor stops answering scrapes",
            "interval": "1m",
            "input_series": [_series("up", P1, "1 1 0 0 0 0")],
            "alert_rule_test": [
                {"eval_time": "1m", "alertname": "MiniscanProcessorDown", "exp_alerts": []},
                {
                    "eval_time": "4m",
                    "alertname": "MiniscanProcessorDown",
                    "exp_alerts": [{"exp_labels": critical_p1}],
                },
                {"eval_time": "4m", "alertname": "MiniscanProcessorAbsent", "exp_alerts": []},
            ],
        },
        {
            "name": "no processor target exists at all",
            "interval": "1m",
            "input_series": [_series("miniscan_scans_rows", P1, "1x10")],
            "alert_rule_test": [
                {
                    "eval_time": "3m",
                    "alertname": "MiniscanProcessorAbsent",
                    "exp_alerts": [{"exp_labels": {"severity": "critical", "job": "miniscan"}}],
                },
            ],
        },
        {
            # Commits every 15 s until 5m, then none while 5 messages stay in flight.
            "name": "commits stop while messages are pending",
            "interval": "15s",
            "input_series": [
                _series("miniscan_commit_duration_seconds_count", P1, "0+1x20 20x40"),
                _series("miniscan_queue_depth", {**P1, "queue": "in_flight"}, "5x60"),
                _series("miniscan_queue_depth", {**P1, "queue": "pending_commit"}, "0x60"),
            ],
            "alert_rule_test": [
                {"eval_time": "8m", "alertname": "MiniscanCommitsStalled", "exp_alerts": []},
                {
                    "eval_time": "11m",
                    "alertname": "MiniscanCommitsStalled",
                    "exp_alerts": [{"exp_labels": stalled}],
                },
            ],
        },
        {
            "name": "no commits because nothing is pending",
            "interval": "15s",
            "input_series": [
                _series("miniscan_commit_duration_seconds_count", P1, "0+1x20 20x40"),
                _series("miniscan_queue_depth", {**P1, "queue": "in_flight"}, "0x60"),
            ],
            "alert_rule_test": [
                {"eval_time": "12m", "alertname": "MiniscanCommitsStalled", "exp_alerts": []},
            ],
        },
        {
            "name": "a processor that never commits after starting",
            "interval": "15s",
            "input_series": [
                _series("miniscan_commit_duration_seconds_count", P1, "0x60"),
                _series("miniscan_queue_depth", {**P1, "queue": "in_flight"}, "5x60"),
            ],
            "alert_rule_test": [
                {"eval_time": "3m", "alertname": "MiniscanCommitsStalled", "exp_alerts": []},
                {
                    "eval_time": "6m",
                    "alertname": "MiniscanCommitsStalled",
                    "exp_alerts": [{"exp_labels": stalled}],
                },
            ],
        },
        {
            "name": "one message in eleven is dead-lettered",
            "interval": "15s",
            "input_series": [
                _series("miniscan_messages_stored_total", P1, "0+100x60"),
                _series(
                    "miniscan_messages_dead_lettered_total",
                    {**P1, "reason": "invalid_json"},
                    "0+10x60",
                ),
            ],
            "alert_rule_test": [
                {
                    "eval_time": "12m",
                    "alertname": "MiniscanDeadLetterRatioHigh",
                    "exp_alerts": [{"exp_labels": {"severity": "warning", "job": "miniscan"}}],
                },
            ],
        },
        {
            "name": "one message in a hundred and one is dead-lettered",
            "interval": "15s",
            "input_series": [
                _series("miniscan_messages_stored_total", P1, "0+100x60"),
                _series(
                    "miniscan_messages_dead_lettered_total",
                    {**P1, "reason": "invalid_json"},
                    "0+1x60",
                ),
            ],
            "alert_rule_test": [
                {"eval_time": "12m", "alertname": "MiniscanDeadLetterRatioHigh", "exp_alerts": []},
            ],
        },
        {
            "name": "a decoder restarts every minute, the writer once",
            "interval": "1m",
            "input_series": [
                _series("miniscan_child_restarts_total", {**P1, "role": "decoder"}, "0 0+1x7"),
                _series("miniscan_child_restarts_total", {**P1, "role": "writer"}, "0 0 1x6"),
            ],
            "alert_rule_test": [
                {
                    "eval_time": "8m",
                    "alertname": "MiniscanRestartStorm",
                    "exp_alerts": [
                        {"exp_labels": {"severity": "critical", "role": "decoder", **P1}}
                    ],
                },
            ],
        },
        {
            "name": "messages take 10 to 30 s from publish to commit",
            "interval": "15s",
            "input_series": [
                _series("miniscan_end_to_end_latency_seconds_bucket", {**P1, "le": le}, values)
                for le, values in (
                    ("1", "0x60"),
                    ("10", "0x60"),
                    ("30", "0+10x60"),
                    ("+Inf", "0+10x60"),
                )
            ],
            "alert_rule_test": [
                {
                    "eval_time": "12m",
                    "alertname": "MiniscanEndToEndLatencyHigh",
                    "exp_alerts": [{"exp_labels": {"severity": "warning", "job": "miniscan"}}],
                },
            ],
        },
        {
            "name": "messages take under a second from publish to commit",
            "interval": "15s",
            "input_series": [
                _series("miniscan_end_to_end_latency_seconds_bucket", {**P1, "le": le}, values)
                for le, values in (
                    ("1", "0+10x60"),
                    ("10", "0+10x60"),
                    ("30", "0+10x60"),
                    ("+Inf", "0+10x60"),
                )
            ],
            "alert_rule_test": [
                {"eval_time": "12m", "alertname": "MiniscanEndToEndLatencyHigh", "exp_alerts": []},
            ],
        },
        {
            "name": "every pull fails and nothing is pulled",
            "interval": "15s",
            "input_series": [
                _series(PUBSUB_ERRORS, {**P1, "call": "pull", "code": "UNAVAILABLE"}, "0+2x60"),
                _series(
                    PUBSUB_ERRORS, {**P1, "call": "acknowledge", "code": "UNAVAILABLE"}, "0x60"
                ),
                _series("miniscan_messages_pulled_total", P1, "500x60"),
            ],
            "alert_rule_test": [
                {"eval_time": "4m", "alertname": "MiniscanPubSubPullFailing", "exp_alerts": []},
                {
                    "eval_time": "6m",
                    "alertname": "MiniscanPubSubPullFailing",
                    "exp_alerts": [{"exp_labels": critical_p1}],
                },
            ],
        },
        {
            "name": "some pulls fail while messages keep arriving",
            "interval": "15s",
            "input_series": [
                _series(PUBSUB_ERRORS, {**P1, "call": "pull", "code": "UNAVAILABLE"}, "0+1x60"),
                _series("miniscan_messages_pulled_total", P1, "0+100x60"),
            ],
            "alert_rule_test": [
                {"eval_time": "12m", "alertname": "MiniscanPubSubPullFailing", "exp_alerts": []},
            ],
        },
        {
            "name": "the database is down for two minutes, then a 30 s blip",
            "interval": "15s",
            "input_series": [_series("miniscan_database_up", P1, "1x4 0x8 1x8 0x2 1x20")],
            "alert_rule_test": [
                {"eval_time": "2m", "alertname": "MiniscanDatabaseUnavailable", "exp_alerts": []},
                {
                    "eval_time": "3m",
                    "alertname": "MiniscanDatabaseUnavailable",
                    "exp_alerts": [{"exp_labels": critical_p1}],
                },
                {"eval_time": "6m", "alertname": "MiniscanDatabaseUnavailable", "exp_alerts": []},
                {"eval_time": "7m", "alertname": "MiniscanDatabaseUnavailable", "exp_alerts": []},
            ],
        },
        {
            "name": "a two-minute outage, then pulls succeed again",
            "interval": "15s",
            "input_series": [
                _series(
                    PUBSUB_ERRORS, {**P1, "call": "pull", "code": "UNAVAILABLE"}, "0+2x8 16x52"
                ),
                _series("miniscan_messages_pulled_total", P1, "0x8 0+100x52"),
            ],
            "alert_rule_test": [
                {"eval_time": "6m", "alertname": "MiniscanPubSubPullFailing", "exp_alerts": []},
                {"eval_time": "12m", "alertname": "MiniscanPubSubPullFailing", "exp_alerts": []},
            ],
        },
        {
            # The oldest message pulled waited 10 min and more, for a quarter of an hour.
            "name": "a backlog the processors do not catch up with",
            "interval": "1m",
            "input_series": [_series("miniscan_pull_lag_seconds", P1, "0 60 300 600+60x20")],
            "alert_rule_test": [
                {"eval_time": "10m", "alertname": "MiniscanPullLagHigh", "exp_alerts": []},
                {
                    "eval_time": "16m",
                    "alertname": "MiniscanPullLagHigh",
                    "exp_alerts": [{"exp_labels": {"severity": "warning", "job": "miniscan"}}],
                },
            ],
        },
        {
            "name": "a burst that is drained within minutes",
            "interval": "1m",
            "input_series": [
                _series("miniscan_pull_lag_seconds", P1, "0 400 700 650 300 10 0x20"),
            ],
            "alert_rule_test": [
                {"eval_time": "20m", "alertname": "MiniscanPullLagHigh", "exp_alerts": []},
            ],
        },
        {
            "name": "acknowledge errors alone are not this alert",
            "interval": "15s",
            "input_series": [
                _series(
                    PUBSUB_ERRORS, {**P1, "call": "acknowledge", "code": "UNAVAILABLE"}, "0+2x60"
                ),
                _series("miniscan_messages_pulled_total", P1, "500x60"),
            ],
            "alert_rule_test": [
                {"eval_time": "8m", "alertname": "MiniscanPubSubPullFailing", "exp_alerts": []},
            ],
        },
    ]


def test_the_pull_alert_says_what_to_check():
    (rule,) = [rule for rule in alert_rules() if rule["alert"] == "MiniscanPubSubPullFailing"]
    assert rule["labels"]["severity"] == "critical"
    assert 'call="pull"' in rule["expr"] and rule["for"] == "4m"  # + the 1m window: 5 minutes
    runbook = rule["annotations"]["runbook"]
    for step in ("Pub/Sub errors by call", "UNAVAILABLE", "/readyz"):
        assert step in runbook, f"the runbook does not mention {step}"
    panels = {panel["title"] for panel in dashboard_panels(load_dashboard())}
    assert "Pub/Sub errors by call and code in range" in panels  # the panel it sends you to


def test_every_alert_fires_in_its_scenario_and_only_there(tmp_path):
    # promtool compares rendered annotations verbatim; the scenarios check when an alert fires
    # and with which labels, so they run against a copy of the rules without annotations
    # (`check rules` above has already parsed the annotation templates).
    groups = load_yaml(ALERTS)["groups"]
    for group in groups:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    rules_copy = tmp_path / "alerts-without-annotations.yml"
    rules_copy.write_text(json.dumps({"groups": groups}))  # JSON is YAML
    scenarios = _alert_scenarios()
    tested = {case["alertname"] for group in scenarios for case in group["alert_rule_test"]}
    assert tested == {rule["alert"] for rule in alert_rules()}, "an alert has no scenario"

    test_file = tmp_path / "alerts-test.yml"
    test_file.write_text(
        json.dumps({"rule_files": [str(rules_copy)], "evaluation_interval": "1m",
                    "tests": scenarios})
    )  # fmt: skip
    result = promtool("test", "rules", str(test_file))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_contract_matches_what_supervisor_metrics_declares():
    # In a child interpreter: importing prometheus_client here would fix this test process's
    # value store before any test that needs multiprocess mode could choose it.
    program = (
        "import json, prometheus_client.metrics as m, contracts.metrics as s\n"
        "print(json.dumps({f.name: f.type for o in vars(s).values()\n"
        "  if isinstance(o, m.MetricWrapperBase) for f in o.describe()}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, cwd=REPO, env=env,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    declared = json.loads(result.stdout)
    by_type = {
        kind: {name for name, declared_type in declared.items() if declared_type == kind}
        for kind in ("counter", "histogram", "gauge")
    }
    assert {name + "_total" for name in by_type["counter"]} == CONTRACT_COUNTERS
    assert by_type["histogram"] == CONTRACT_HISTOGRAMS
    assert by_type["gauge"] == CONTRACT_GAUGES
    assert set(declared) == by_type["counter"] | by_type["histogram"] | by_type["gauge"]


# --- Grafana ------------------------------------------------------------------------------


def test_dashboard_has_a_stable_uid_and_a_title():
    dashboard = load_dashboard()
    assert dashboard["uid"] == DASHBOARD_UID
    assert dashboard["title"]
    assert "id" not in dashboard or dashboard["id"] is None  # Grafana assigns ids itself


def test_every_panel_and_query_uses_the_datasource_variable():
    # Importable into any Grafana (issue 27): the Prometheus is picked, not a fixed uid.
    dashboard = load_dashboard()
    (picker,) = [var for var in dashboard["templating"]["list"] if var["type"] == "datasource"]
    assert (picker["name"], picker["query"]) == ("datasource", "prometheus")
    # Where it is provisioned, the picker's default (Grafana's default datasource) is ours.
    (provisioned,) = load_yaml(DATASOURCES)["datasources"]
    assert provisioned["isDefault"] is True
    assert provisioned["uid"] == GRAFANA_VARIABLES["datasource"]
    users = [
        (panel["title"], panel) for panel in dashboard_panels(dashboard) if panel["type"] != "row"
    ]
    users += [
        (f"{panel['title']} / {target['refId']}", target)
        for panel in dashboard_panels(dashboard)
        for target in panel.get("targets", [])
    ]
    users += [(f"${var['name']}", var) for var in query_variables(dashboard)]
    assert users
    for where, user in users:
        assert user.get("datasource") == {"type": "prometheus", "uid": "${datasource}"}, where


def test_the_dashboard_names_no_job_and_no_datasource_uid_of_its_own():
    text = DASHBOARD.read_text()
    assert GRAFANA_VARIABLES["datasource"] not in text
    for where, expr in dashboard_expressions(load_dashboard()):
        if "job=" in expr:
            assert 'job="$job"' in expr and 'job="miniscan"' not in expr, where
    for variable in query_variables(load_dashboard()):
        assert 'job="miniscan"' not in variable["definition"], variable["name"]


def test_every_panel_has_a_query_and_a_unique_id_within_the_grid():
    panels = [p for p in dashboard_panels(load_dashboard()) if p["type"] != "row"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel.get("targets"), f"{panel['title']} has no query"
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]


def test_dashboard_expressions_use_contract_metric_names_only():
    expressions = dashboard_expressions(load_dashboard())
    assert expressions
    for where, expr in expressions:
        unknown = promql_metric_names(expr) - CONTRACT_SERIES - SCRAPE_SERIES
        assert not unknown, f"{where} uses metrics outside the contract: {unknown}"


def test_dashboard_shows_every_contract_metric():
    used = set()
    for _, expr in dashboard_expressions(load_dashboard()):
        used |= promql_metric_names(expr)
    for variable in query_variables(load_dashboard()):
        used |= promql_metric_names(variable_selector(variable))
    shown = {name.removesuffix(suffix) for name in used for suffix in HISTOGRAM_SUFFIXES}
    missing = (CONTRACT_COUNTERS | CONTRACT_GAUGES | CONTRACT_HISTOGRAMS) - used - shown
    assert not missing, f"no panel shows {sorted(missing)}"


def test_dashboard_variables_are_all_known():
    dashboard = load_dashboard()
    declared = {variable["name"] for variable in dashboard["templating"]["list"]}
    assert declared <= set(GRAFANA_VARIABLES)
    for where, expr in dashboard_expressions(dashboard):
        try:
            substitute_grafana_variables(expr)
        except (KeyError, ValueError) as exc:
            pytest.fail(f"{where}: unknown Grafana variable {exc} in {expr!r}")


def test_dashboard_provider_loads_the_dashboard_directory_read_only():
    (provider,) = load_yaml(DASHBOARD_PROVIDERS)["providers"]
    assert provider["type"] == "file"
    assert provider["allowUiUpdates"] is False
    assert provider["options"]["path"]  # where docker-compose.yml mounts ops/grafana/dashboards


def _panel(title: str) -> dict[str, Any]:
    (panel,) = [p for p in dashboard_panels(load_dashboard()) if p["title"] == title]
    return panel


@pytest.mark.parametrize(
    ("title", "metric"),
    [
        ("Pulled per replica", "miniscan_messages_pulled_total"),
        ("Stored per replica", "miniscan_messages_stored_total"),
        ("Commits per replica", "miniscan_commit_duration_seconds_count"),
    ],
)
def test_replica_panels_show_each_replica_and_the_total(title, metric):
    # docker-compose.scale.yml runs several replicas; each is its own Prometheus instance.
    targets = _panel(title)["targets"]
    outer = re.compile(r"^(sum(?: by \(instance\))?)\s*\(rate\(")
    shapes = {
        (match[1] if (match := outer.match(target["expr"])) else target["expr"],
         target["legendFormat"])
        for target in targets
    }  # fmt: skip
    assert shapes == {("sum by (instance)", "{{instance}}"), ("sum", "total")}, shapes
    for target in targets:
        assert promql_metric_names(target["expr"]) == {metric}
        assert 'instance=~"$instance"' in target["expr"]


def test_pubsub_errors_panel_shows_each_call():
    (target,) = _panel("Pub/Sub errors by call")["targets"]
    assert promql_metric_names(target["expr"]) == {"miniscan_pubsub_errors_total"}
    assert "sum by (call)" in target["expr"] and target["legendFormat"] == "{{call}}"


def test_a_store_that_replicas_share_is_counted_once():
    # On PostgreSQL every replica reports the same scans table: a sum over replicas would
    # count it once per replica. Take the largest report, or show each replica on its own.
    for where, expr in dashboard_expressions(load_dashboard()):
        if "miniscan_scans_rows" in promql_metric_names(expr):
            assert re.match(r"^(max|sum by \(instance\))\s*\(", expr), f"{where}: {expr}"
