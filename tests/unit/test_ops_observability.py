"""The dashboards and alerts read metrics the processes really export, every
alert is covered by ``promtool test rules``, and the Alertmanager config
routes every severity the rules use (the validators themselves run in
``tools/check_compose.sh``, see test_dev_deploy.py)."""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy/grafana/dashboards/minequest.json"
ALERTS = ROOT / "deploy/prometheus/alerts.yml"
ALERT_TESTS = ROOT / "deploy/prometheus/alerts.test.yml"
ALERTMANAGER = ROOT / "deploy/alertmanager/alertmanager.yml"

#: Every module that defines Prometheus metrics (a new one belongs here).
METRIC_MODULES = (
    "runtime.metrics",
    "runtime.store_monitoring",
    "gateway.middleware.metrics",
    "gateway.protection.metrics",
    "gateway.click_batcher",
    "services.auth.delivery",
    "services.mining.metrics",
    "services.quests.metrics",
    "services.wallet.metrics",
)
#: Series Prometheus makes itself.
SYNTHETIC = {"up"}
_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "gauge": ("",),
    "summary": ("", "_sum", "_count"),
    "info": ("_info",),
}
_WORD = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "and"}
_KEYWORDS |= {"or", "unless", "bool", "inf", "nan"}


def exported_names() -> set[str]:
    """Every series name the processes can export, from the live registry."""
    for module in METRIC_MODULES:
        importlib.import_module(module)
    names = set(SYNTHETIC)
    for family in REGISTRY.collect():
        for suffix in _SUFFIXES.get(family.type, ("",)):
            names.add(family.name + suffix)
    return names


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression reads (labels, functions and
    keywords left out)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    expr = re.sub(r"\{[^}]*\}", "{}", expr)  # label matchers
    expr = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", "", expr)  # grouping labels
    expr = re.sub(r"\[[^\]]*\]", "[]", expr)  # ranges
    expr = re.sub(r"\boffset\s+\w+", "", expr)  # offsets
    expr = re.sub(r"(?<![A-Za-z_:])[0-9.]+(?:e[+-]?[0-9]+)?", "0", expr)  # numbers
    found = set()
    for match in _WORD.finditer(expr):
        word, rest = match.group(), expr[match.end() :].lstrip()
        if word in _KEYWORDS or rest.startswith("(") or word.startswith("$"):
            continue
        if expr[match.start() - 1 : match.start()] == "$":
            continue
        found.add(word)
    return found


def dashboard_exprs() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_the_expression_parser_finds_metrics_and_nothing_else() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (le, job) (rate(db_query_duration_seconds_bucket"
        '{job=~"$service"}[$__rate_interval]))) > 0.9 * max(mining_queue_max_depth)'
        " or vector(0) > 2e9 and rate(mining_coins_mined_total[15m] offset 1h)"
    )
    assert metric_names(expr) == {
        "db_query_duration_seconds_bucket",
        "mining_queue_max_depth",
        "mining_coins_mined_total",
    }


def test_every_dashboard_query_reads_metrics_that_exist() -> None:
    exported = exported_names()
    missing = {
        title: sorted(metric_names(expr) - exported)
        for title, expr in dashboard_exprs()
        if metric_names(expr) - exported
    }
    assert missing == {}


def test_every_alert_reads_metrics_that_exist() -> None:
    exported = exported_names()
    missing = {
        rule["alert"]: sorted(metric_names(rule["expr"]) - exported)
        for rule in alert_rules()
        if metric_names(rule["expr"]) - exported
    }
    assert missing == {}


def test_the_dashboard_has_the_guides_panels_with_units_and_a_service_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = {panel["title"]: panel for panel in dashboard["panels"]}
    units = {
        "RPS & status split": "reqps",
        "Mining latency p95": "s",
        "Queue depth": "short",
        "Worker lag": "s",
        "Worker success rate (5m)": "percentunit",
        "Top failure reasons": "short",
        "Redis latency p95 (hot-path scripts)": "ms",
        "Memory (resident)": "bytes",
        "CPU (share of one core)": "percentunit",
        "Cache hit rate": "percentunit",
        "Query time p95 by command": "s",
        "Connection pool": "short",
    }
    assert {title: panels[title]["fieldConfig"]["defaults"]["unit"] for title in units} == units
    queue = [target["expr"] for target in panels["Queue depth"]["targets"]]
    assert "0.9 * max(mining_queue_max_depth)" in queue, "the alert's threshold line"
    assert panels["RPS & status split"]["fieldConfig"]["defaults"]["custom"]["stacking"] == {
        "mode": "normal",
        "group": "A",
    }
    assert panels["Top failure reasons"]["type"] == "table"
    assert "by (error_code)" in panels["Top failure reasons"]["targets"][0]["expr"]
    variables = {each["name"]: each for each in dashboard["templating"]["list"]}
    assert variables["service"]["query"]["query"] == "label_values(up, job)"
    uses = [expr for _, expr in dashboard_exprs() if '"$service"' in expr]
    assert len(uses) >= 5


def test_the_guides_alerts_exist_under_their_names() -> None:
    rules = {rule["alert"]: rule for rule in alert_rules()}
    assert rules["MiningQueueBackpressure"]["for"] == "2m"
    assert "0.9 * max(mining_queue_max_depth)" in rules["MiningQueueBackpressure"]["expr"]
    assert rules["MiningWorkerFailures"]["for"] == "3m"
    assert rules["MiningWorkerFailures"]["labels"]["severity"] == "critical"
    assert 'status="429"' in rules["MiningApi429Spike"]["expr"]
    assert rules["MiningApi429Spike"]["for"] == "5m"
    for name in (
        "HighMemoryUsage",
        "HighCpuUsage",
        "DbPoolExhaustion",
        "SlowDbQueries",
        "NoActiveMiners",
        "HighPendingWithdrawals",
        "MiningRateDrop",
    ):
        assert name in rules


def test_promtool_tests_make_every_alert_fire_and_stay_quiet() -> None:
    tests = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    checks = [check for test in tests for check in test.get("alert_rule_test", [])]
    fired = {check["alertname"] for check in checks if check.get("exp_alerts")}
    quiet = {check["alertname"] for check in checks if not check.get("exp_alerts")}
    names = {rule["alert"] for rule in alert_rules()}
    assert names - fired == set(), "alerts no test makes fire"
    assert names - quiet == set(), "alerts no test shows quiet"


def test_alertmanager_routes_every_severity_the_rules_use() -> None:
    config = yaml.safe_load(ALERTMANAGER.read_text())
    severities = {rule["labels"]["severity"] for rule in alert_rules()}
    routed = set()
    for route in config["route"]["routes"]:
        for matcher in route["matchers"]:
            name, _, pattern = matcher.partition("=~")
            assert name == "severity"
            routed |= {s for s in severities if re.fullmatch(pattern.strip('"'), s)}
    assert routed == severities
    receivers = {receiver["name"] for receiver in config["receivers"]}
    assert {route["receiver"] for route in config["route"]["routes"]} <= receivers
    assert all(hook["send_resolved"] for r in config["receivers"] for hook in r["webhook_configs"])


@pytest.mark.skipif(shutil.which("amtool") is None, reason="amtool missing: make deploy-tools")
def test_amtool_accepts_the_alertmanager_config() -> None:
    result = subprocess.run(
        ["amtool", "check-config", str(ALERTMANAGER)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool missing: make deploy-tools")
def test_promtool_runs_the_alert_tests() -> None:
    result = subprocess.run(
        ["promtool", "test", "rules", ALERT_TESTS.name],
        cwd=ALERT_TESTS.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
