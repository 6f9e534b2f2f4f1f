"""Readers of ops/ shared by the tests of it: where its files are, how to load them, and the
PromQL that Grafana would send. A plain module, not a test file (pytest puts tests/ on
sys.path): tests/test_ops_static.py, tests/test_compose.py and tests/test_prometheus_e2e.py
import it.

Owns: the paths of ops/ files, loading YAML and the dashboard, listing the dashboard's
queries and the alert rules, filling Grafana's variables and the local Prometheus config's
placeholders, and skipping (or failing, when CI requires them) without a needed tool.

Never: assert what the files should say; the tests do.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import string
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
PROMETHEUS_DIR = REPO / "ops" / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
PROMETHEUS_LOCAL_TEMPLATE = PROMETHEUS_DIR / "prometheus-local.yml"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
GRAFANA_DIR = REPO / "ops" / "grafana"
DATASOURCES = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = GRAFANA_DIR / "provisioning" / "dashboards" / "miniscan.yml"
DASHBOARD = GRAFANA_DIR / "dashboards" / "miniscan.json"

# Values for Grafana's variables when an expression is run outside Grafana.
GRAFANA_VARIABLES = {
    "__rate_interval": "15s",
    "__interval": "15s",
    "__range": "1m",
    "instance": ".*",
    "job": "miniscan",  # the scrape job of ops/prometheus/*.yml; another Grafana picks its own
    "datasource": "miniscan-prometheus",  # the provisioned one (a datasource variable)
}


def require_tool(name: str, install: str = "apt-get install prometheus docker-compose") -> str:
    """The path of a command-line tool; skip (or fail, when CI requires it) if it is missing."""
    path = shutil.which(name)
    if path is None:
        reason = f"{name} is not on PATH (Debian: {install})"
        if os.environ.get("MINISCAN_REQUIRE_EMULATOR") == "1":
            pytest.fail(f"{reason}, and MINISCAN_REQUIRE_EMULATOR=1 requires it")
        pytest.skip(reason)
    return path


def load_yaml(path: Path) -> Any:
    """Parse a YAML file: with PyYAML when installed, else through the `yq` tool (YAML to JSON)."""
    try:
        import yaml
    except ImportError:
        yq = require_tool("yq", install="apt-get install yq, or pip install pyyaml")
        result = subprocess.run(
            [yq, ".", str(path)], capture_output=True, text=True, timeout=30, check=True
        )
        return json.loads(result.stdout)
    return yaml.safe_load(path.read_text())


def load_dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def dashboard_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    panels = []
    for panel in dashboard["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def dashboard_expressions(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title / legend, PromQL expression) for every query of every panel."""
    return [
        (f"{panel['title']} / {target.get('legendFormat') or target['refId']}", target["expr"])
        for panel in dashboard_panels(dashboard)
        for target in panel.get("targets", [])
    ]


_LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")


def query_variables(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """The template variables that query Prometheus (not the datasource picker)."""
    return [variable for variable in dashboard["templating"]["list"] if variable["type"] == "query"]


def variable_selector(variable: dict[str, Any]) -> str:
    """The series selector of a `label_values(selector, label)` template variable, with the
    variables it uses filled in."""
    match = _LABEL_VALUES.match(variable["definition"].strip())
    assert match, f"${variable['name']} is not a label_values(selector, label) query"
    return substitute_grafana_variables(match["selector"])


def substitute_grafana_variables(expr: str) -> str:
    """The expression as Grafana would send it, with fixed values for its variables.

    Raises KeyError for a variable that has no value here, so a typo cannot slip through.
    """
    return string.Template(expr).substitute(GRAFANA_VARIABLES)


def render_local_prometheus_config(metrics_target: str, scrape_interval: str) -> str:
    """ops/prometheus/prometheus-local.yml with its placeholders filled in."""
    return string.Template(PROMETHEUS_LOCAL_TEMPLATE.read_text()).substitute(
        METRICS_TARGET=metrics_target,
        SCRAPE_INTERVAL=scrape_interval,
        ALERTS_FILE=str(ALERTS),
    )


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]]
