"""The Grafana dashboard and the alert rules in ``deploy/monitoring`` read series that exist.

Prometheus answers a query for a metric nobody exports with an empty result, so a renamed metric
or a forgotten ``_total`` would leave a blank panel or an alert that can never fire, silently.
Here every expression (dashboard targets, annotations, variables, rules) is lexed for metric
names and labels (``monitoring_promql``) and compared with what a real ``Telemetry`` registry
exposes through Prometheus's text format (``monitoring_sources``).

promtool (Debian's ``prometheus`` package, installed by ``scripts/system-deps.sh``) checks the
rules and runs ``rules_test.yaml``, so each alert's threshold is tested behaviour; it also parses
every dashboard expression, and evaluates the dashboard's counting of labelled counters. Without
promtool those tests fail rather than skip: CI has it, and a skip would hide a broken rule.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.deploy.monitoring_promql import PromQLError, Selector, metric_names, parse
from tests.unit.deploy.monitoring_sources import (
    DASHBOARD,
    DOCS,
    GRAFANA_BUILTINS,
    LABEL_VALUES,
    MONITORING,
    PROMETHEUS_OWN,
    RULES_TEST,
    TARGET_LABELS,
    Expr,
    alerts,
    dashboard_exprs,
    exported_metrics,
    families,
    grafana_variables,
    load_dashboard,
    rule_exprs,
    rule_groups,
    substitute,
    walk_panels,
)
from tests.unit.deploy.rbac_scan import REPO

DS_REF = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
PANEL_TYPES = {"timeseries", "stat", "table", "piechart", "row"}
SEVERITIES = {"critical", "warning", "info"}
# Grafana variables as the dashboard would send them, for promtool
SUBSTITUTIONS = {
    "job": "sluice-metrics",
    "namespace": ".*",
    "rollout": ".*",
    "__rate_interval": "2m",
    "__interval": "1m",
    "__range": "1h",
}


@pytest.fixture(scope="module")
def exported() -> dict[str, frozenset[str]]:
    return {**exported_metrics(), **PROMETHEUS_OWN}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return load_dashboard()


def all_exprs() -> list[Expr]:
    return dashboard_exprs(load_dashboard()) + rule_exprs()


def unknown_metrics(exprs: list[Expr], exported: dict[str, frozenset[str]]) -> dict[str, set[str]]:
    """Expression -> the metric names in it that nobody exports."""
    out = {e.where: metric_names(e.promql) - set(exported) for e in exprs}
    return {where: names for where, names in out.items() if names}


def label_problems(e: Expr, exported: dict[str, frozenset[str]]) -> list[str]:
    """Labels the expression filters, groups or prints by that its metrics do not carry."""
    parsed = parse(e.promql)
    problems: list[str] = []
    available: set[str] = set(TARGET_LABELS)
    for s in parsed.selectors:
        assert s.name is not None, f"{e.where}: a selector without a metric name"
        labels = exported.get(s.name, frozenset()) | TARGET_LABELS
        available |= labels
        for label, op, value in s.matchers:
            if label not in labels:
                problems.append(f"{s.name} has no label {label!r}")
            elif op == "=" and label in LABEL_VALUES and value not in LABEL_VALUES[label]:
                problems.append(f"{s.name}{{{label}={value!r}}}: the controller never writes it")
    for label in parsed.grouping - available:
        problems.append(f"grouping by {label!r}, which none of its metrics carries")
    # a legend (or a label_values query) can only print labels the result keeps
    result_labels = parsed.grouping or available
    shown = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", e.legend))
    if e.label_values_of:
        shown.add(e.label_values_of)
    for label in shown - result_labels:
        problems.append(f"shows label {label!r}, which the result does not have")
    return [f"{e.where}: {p}" for p in problems]


# ---------------------------------------------------------------------------------------------
# the PromQL lexer itself
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "metrics"),
    [
        # a function's name is not a metric; `by (le)` is a label list
        (
            'histogram_quantile(0.9, sum by (le) (rate(x_bucket{le!="+Inf"}[5m])))',
            {"x_bucket"},
        ),
        # label values that look like metrics or calls, escaped quotes and a '}' in a string
        ('foo{a="rate(bar[5m])", b=~"x\\"}y", c!~`baz{}`}', {"foo"}),
        # offset durations, chained units, @ modifiers, bool, keywords in either case
        ("a offset 1h30m > bool 2 AND ON(instance) b @ 1609746000", {"a", "b"}),
        ("rate(a[5m] @ end()) / ignoring(pod) group_left(phase) b", {"a", "b"}),
        # Grafana variables inside and outside brackets
        ('sum(rate(a{ns=~"$namespace"}[$__rate_interval])) offset $__interval', {"a"}),
        ("sum(rate(a[${__rate_interval}])) / [[b]]", {"a"}),
        # subqueries, numbers of every shape, Inf and NaN, comments
        ("max_over_time(deriv(a[1h:5m])[1d:]) + 0x1f * 1e-3 - .5 + Inf - nan", {"a"}),
        ("a # b is a comment\n+ c", {"a", "c"}),
        # {__name__=...} names a metric; functions with string args name none
        ('{__name__="x", job="j"} or label_replace(up, "dst", "$1", "src", "(.*)")', {"x", "up"}),
        ('absent(up{job="s"} == 1) or vector(0) unless without (pod) c', {"up", "c"}),
        ("colon:recorded:rate5m", {"colon:recorded:rate5m"}),
    ],
)
def test_lexer_finds_metric_names_in_tricky_expressions(expr: str, metrics: set[str]) -> None:
    assert metric_names(expr) == metrics


def test_lexer_reads_matchers_and_grouping_labels() -> None:
    parsed = parse(
        'sum by (namespace, rollout) (x{phase="Paused", ns=~"a|b"}) / on(job) group_left y'
    )
    assert parsed.selectors == [
        Selector("x", [("phase", "=", "Paused"), ("ns", "=~", "a|b")]),
        Selector("y", []),
    ]
    assert parsed.grouping == {"namespace", "rollout", "job"}
    assert parsed.functions == {"sum"}


@pytest.mark.parametrize(
    "bad",
    [
        "sum(rate(x[5m])",  # unbalanced
        "x)",
        'x{a="unterminated}',
        "x{a}",  # a matcher without an operator
        "x{a=b}",  # an unquoted value
        "x[5m",
        "sum by le (x)",  # a grouping keyword without its list
        "x ; y",  # a character PromQL does not have
        "5mx",  # a malformed number
    ],
)
def test_lexer_refuses_what_it_cannot_read(bad: str) -> None:
    with pytest.raises(PromQLError):
        parse(bad)


# ---------------------------------------------------------------------------------------------
# metrics and labels exist
# ---------------------------------------------------------------------------------------------


def test_names_compared_are_the_scraped_ones(exported: dict[str, frozenset[str]]) -> None:
    # counters gain _total and histograms split into _bucket/_sum/_count when scraped: the
    # comparison must be with those, or `sluice_reconcile_errors` would pass and never match
    assert "sluice_reconcile_errors_total" in exported
    assert "sluice_reconcile_errors" not in exported
    assert {f"sluice_reconcile_duration_seconds_{s}" for s in ("bucket", "sum", "count")} <= set(
        exported
    )
    assert "le" in exported["sluice_reconcile_duration_seconds_bucket"]


def test_every_metric_the_dashboard_and_rules_read_is_exported(
    exported: dict[str, frozenset[str]],
) -> None:
    exprs = all_exprs()
    assert len(exprs) > 20  # the dashboard's targets and variables, and four rules
    assert unknown_metrics(exprs, exported) == {}


def test_a_misspelled_metric_is_caught(
    dashboard: dict[str, Any], exported: dict[str, frozenset[str]]
) -> None:
    broken = copy.deepcopy(dashboard)
    (weight,) = [p for p in broken["panels"] if p["title"] == "Canary weight"]
    weight["targets"][0]["expr"] = weight["targets"][0]["expr"].replace(
        "sluice_rollout_weight", "sluice_rollout_wieght"
    )
    found = unknown_metrics(dashboard_exprs(broken), exported)
    assert found == {f'panel {weight["id"]} "Canary weight" target A': {"sluice_rollout_wieght"}}
    # and the counter's Python name, which Prometheus never sees, in a rule
    rule = Expr("rule X", "rate(sluice_reconcile_errors[5m]) > 0")
    assert unknown_metrics([rule], exported) == {"rule X": {"sluice_reconcile_errors"}}


def test_every_label_used_exists_on_its_metric(exported: dict[str, frozenset[str]]) -> None:
    problems = [p for e in all_exprs() for p in label_problems(e, exported)]
    assert problems == []


def test_label_checks_catch_a_wrong_label_a_wrong_value_and_a_dropped_label(
    exported: dict[str, frozenset[str]],
) -> None:
    bad = [
        Expr("a", 'sluice_rollout_weight{phase="Paused"}'),
        Expr("b", 'sluice_rollout_info{phase="Aborted"}'),
        Expr("c", "sum by (result) (sluice_rollout_step)"),
        Expr("d", "sum by (namespace) (sluice_rollout_step)", legend="{{rollout}}"),
    ]
    assert [len(label_problems(e, exported)) for e in bad] == [1, 1, 1, 1]


def test_dashboard_shows_every_metric_the_controller_exports(dashboard: dict[str, Any]) -> None:
    used = {n for e in dashboard_exprs(dashboard) for n in metric_names(e.promql)}
    for family in families():
        assert any(name.startswith(family) for name in used), f"no panel shows {family}"
    assert "up" in used


# ---------------------------------------------------------------------------------------------
# the dashboard as Grafana reads it
# ---------------------------------------------------------------------------------------------


def walk(node: Any) -> typing.Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield k, v
            yield from walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from walk(v)


def test_dashboard_identity_and_datasource_input(dashboard: dict[str, Any]) -> None:
    assert dashboard["uid"] == "sluice-rollouts"
    assert dashboard["id"] is None  # Grafana assigns ids; a fixed one collides on import
    assert dashboard["schemaVersion"] >= 36 and dashboard["title"]
    (ds_input,) = dashboard["__inputs"]
    assert ds_input["name"] == "DS_PROMETHEUS"
    assert (ds_input["type"], ds_input["pluginId"]) == ("datasource", "prometheus")
    # the Grafana sidecar does not substitute __inputs: a datasource variable of the same name
    # makes ${DS_PROMETHEUS} resolve there too
    (ds_var,) = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert (ds_var["name"], ds_var["query"]) == ("DS_PROMETHEUS", "prometheus")


def test_every_datasource_is_the_input(dashboard: dict[str, Any]) -> None:
    refs = [v for k, v in walk(dashboard) if k == "datasource"]
    assert len(refs) > 20
    assert all(r == DS_REF for r in refs), [r for r in refs if r != DS_REF]
    text = DASHBOARD.read_text()
    assert set(re.findall(r"\$\{(DS_\w+)\}", text)) == {"DS_PROMETHEUS"}
    for panel in walk_panels(dashboard["panels"]):
        if panel["type"] != "row":
            assert panel["datasource"] == DS_REF, panel["title"]
            assert all(t["datasource"] == DS_REF for t in panel["targets"]), panel["title"]


def test_panels_are_well_formed_and_do_not_overlap(dashboard: dict[str, Any]) -> None:
    panels = list(walk_panels(dashboard["panels"]))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    titles = [p["title"] for p in panels]
    assert len(titles) == len(set(titles)), "titles name panels in tests and links"
    cells: dict[tuple[int, int], str] = {}
    for p in panels:
        assert p["type"] in PANEL_TYPES, p["type"]
        g = p["gridPos"]
        assert all(isinstance(g[k], int) for k in "xywh"), p["title"]
        assert g["w"] > 0 and g["h"] > 0 and g["x"] >= 0 and g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = p["title"]
        if p["type"] == "row":
            continue
        assert p["targets"], p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
        for t in p["targets"]:
            assert t["expr"].strip() and "legendFormat" in t, (p["title"], t["refId"])
        assert p.get("description"), f"{p['title']}: say what the panel shows"
    required = {r["id"] for r in dashboard["__requires"] if r["type"] == "panel"}
    assert {p["type"] for p in panels} - {"row"} == required


def test_variables_are_defined_and_filter_the_rollout_panels(dashboard: dict[str, Any]) -> None:
    defined = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"namespace", "rollout", "job"} <= defined
    for v in dashboard["templating"]["list"]:
        if v["name"] in {"namespace", "rollout"}:
            assert v["multi"] and v["includeAll"] and v["allValue"] == ".*", v["name"]
    for e in dashboard_exprs(dashboard):
        assert grafana_variables(e.promql) <= defined | GRAFANA_BUILTINS, e.where
        for s in parse(e.promql).selectors:
            labels = {label for label, _, _ in s.matchers}
            if s.name in {"sluice_rollout_info", "sluice_rollout_weight", "sluice_rollout_step"}:
                assert {"namespace", "rollout"} <= labels or e.where.startswith("variable"), (
                    f"{e.where}: {s.name} ignores the namespace/rollout variables"
                )


def test_dashboard_queries_parse_in_promtool(dashboard: dict[str, Any], tmp_path: Path) -> None:
    rules = [
        {"record": f"dashboard:expr_{i}", "expr": substitute(e.promql, SUBSTITUTIONS)}
        for i, e in enumerate(dashboard_exprs(dashboard))
    ]
    path = tmp_path / "dashboard-exprs.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    out = promtool("check", "rules", str(path))
    assert out.returncode == 0, out.stdout + out.stderr


def test_dashboard_counts_a_labelled_counters_first_increment(
    dashboard: dict[str, Any], tmp_path: Path
) -> None:
    """A transition counter is born at 1 when the transition happens, so ``increase()`` would
    show nothing for it; the dashboard counts a series that is new within the window from 0."""
    (table,) = [p for p in walk_panels(dashboard["panels"]) if p["title"] == "Transitions in range"]
    (pie,) = [p for p in walk_panels(dashboard["panels"]) if p["title"] == "Verdicts in range"]
    series = 'sluice_rollout_phase_transitions_total{job="sluice-metrics", pod="p", namespace="shop", rollout="web", '
    verdicts = 'sluice_analysis_verdicts_total{job="sluice-metrics", pod="p", result='
    test = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    # old news: unchanged during the last hour
                    {
                        "series": series + 'from_phase="None", to_phase="Progressing"}',
                        "values": "1x90",
                    },
                    # born at 1 at 70m, then once more at 80m
                    {
                        "series": series + 'from_phase="Progressing", to_phase="Paused"}',
                        "values": "_x70 1x9 2x10",
                    },
                    {"series": verdicts + '"failed"}', "values": "_x85 1x4"},
                    {"series": verdicts + '"successful"}', "values": "3x90"},
                ],
                "promql_expr_test": [
                    {
                        "expr": substitute(table["targets"][0]["expr"], SUBSTITUTIONS),
                        "eval_time": "89m",
                        "exp_samples": [
                            {
                                "labels": '{namespace="shop", rollout="web", from_phase="Progressing", to_phase="Paused"}',
                                "value": 2,
                            }
                        ],
                    },
                    {
                        "expr": substitute(pie["targets"][0]["expr"], SUBSTITUTIONS),
                        "eval_time": "89m",
                        "exp_samples": [{"labels": '{result="failed"}', "value": 1}],
                    },
                ],
            }
        ],
    }
    path = tmp_path / "dashboard_test.yaml"
    path.write_text(yaml.safe_dump(test))
    out = promtool("test", "rules", str(path))
    assert out.returncode == 0, out.stdout + out.stderr


# ---------------------------------------------------------------------------------------------
# the Grafana sidecar's ConfigMap, generated from the one JSON file
# ---------------------------------------------------------------------------------------------


def kustomization() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((MONITORING / "kustomization.yaml").read_text())
    return loaded


def test_kustomization_generates_the_sidecar_configmap_from_the_dashboard_file() -> None:
    k = kustomization()
    for resource in k["resources"]:
        assert (MONITORING / resource).is_file(), resource
    (gen,) = k["configMapGenerator"]
    assert gen["files"] == [DASHBOARD.name]
    assert gen["options"]["disableNameSuffixHash"] is True  # a stable name to find and replace
    assert gen["options"]["labels"] == {"grafana_dashboard": "1"}
    # the JSON exists once: no other file in the repository carries the dashboard's uid
    holders = [
        p
        for p in (REPO / "deploy").rglob("*")
        if p.is_file() and '"sluice-rollouts"' in p.read_text(errors="replace")
    ]
    assert holders == [DASHBOARD]
    # deploy/ installs without the Prometheus Operator, so it must not pull this directory in
    top = yaml.safe_load((REPO / "deploy" / "kustomization.yaml").read_text())
    assert "monitoring" not in top["resources"]


@pytest.mark.skipif(
    shutil.which("kubectl") is None, reason="kubectl not installed (as test_kustomize)"
)
def test_kubectl_kustomize_builds_the_configmap_from_the_same_json() -> None:
    out = subprocess.run(
        ["kubectl", "kustomize", str(MONITORING)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    built = {d["kind"]: d for d in yaml.safe_load_all(out.stdout) if d is not None}
    assert set(built) == {"ConfigMap", "ServiceMonitor", "PrometheusRule"}
    cm = built["ConfigMap"]
    assert cm["metadata"]["name"] == "sluice-dashboard"
    assert cm["metadata"]["namespace"] == "sluice-system"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"][DASHBOARD.name]) == load_dashboard()
    for o in built.values():
        assert o["metadata"]["labels"]["app.kubernetes.io/part-of"] == "sluice"


# ---------------------------------------------------------------------------------------------
# scraping: the ServiceMonitor finds the metrics Service, and the job label the rules expect
# ---------------------------------------------------------------------------------------------


def test_servicemonitor_selects_the_metrics_service_and_names_the_rules_job() -> None:
    service = yaml.safe_load((REPO / "deploy" / "base" / "service.yaml").read_text())
    monitor = yaml.safe_load((MONITORING / "servicemonitor.yaml").read_text())
    assert monitor["kind"] == "ServiceMonitor"
    spec = monitor["spec"]
    assert spec["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert service["metadata"]["namespace"] in spec["namespaceSelector"]["matchNames"]
    (endpoint,) = spec["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    # rollout series carry the Rollout's namespace; without honorLabels Prometheus renames it
    assert endpoint["honorLabels"] is True
    # the Prometheus Operator names the job after the Service (no jobLabel set)
    assert "jobLabel" not in spec
    jobs = {
        value
        for e in all_exprs()
        for s in parse(e.promql).selectors
        for label, op, value in s.matchers
        if label == "job" and op == "=" and "$" not in value
    }
    assert jobs == {service["metadata"]["name"]}


# ---------------------------------------------------------------------------------------------
# alert rules
# ---------------------------------------------------------------------------------------------


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    found = shutil.which("promtool")
    assert found, (
        "promtool is required (Debian: apt-get install prometheus; CI: scripts/system-deps.sh)"
    )
    return subprocess.run([found, *args], capture_output=True, text=True, timeout=60)


def extract_rules(directory: Path) -> Path:
    path = directory / "sluice-rules.yaml"  # the name rules_test.yaml loads
    path.write_text(yaml.safe_dump({"groups": rule_groups()}))
    return path


def test_promtool_check_rules_passes(tmp_path: Path) -> None:
    out = promtool("check", "rules", str(extract_rules(tmp_path)))
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(alerts())} rules found" in out.stdout


def test_promtool_rule_unit_tests_pass(tmp_path: Path) -> None:
    extract_rules(tmp_path)
    shutil.copy(RULES_TEST, tmp_path / RULES_TEST.name)
    out = promtool("test", "rules", str(tmp_path / RULES_TEST.name))
    assert out.returncode == 0, out.stdout + out.stderr


def test_rule_unit_tests_fail_when_a_threshold_moves(tmp_path: Path) -> None:
    """rules_test.yaml pins the thresholds: halving the paused-too-long time breaks it."""
    groups = rule_groups()
    for rule in (r for g in groups for r in g["rules"]):
        if rule.get("alert") == "SluiceRolloutPausedTooLong":
            rule["for"] = "30m"
    (tmp_path / "sluice-rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    shutil.copy(RULES_TEST, tmp_path / RULES_TEST.name)
    out = promtool("test", "rules", str(tmp_path / RULES_TEST.name))
    assert out.returncode != 0 and "SluiceRolloutPausedTooLong" in out.stdout + out.stderr


def test_each_alert_is_tested_firing_and_quiet() -> None:
    cases = yaml.safe_load(RULES_TEST.read_text())["tests"]
    checks = [c for t in cases for c in t.get("alert_rule_test", [])]
    for alert in alerts():
        mine = [c for c in checks if c["alertname"] == alert["alert"]]
        assert any(c["exp_alerts"] for c in mine), f"{alert['alert']} never shown firing"
        assert any(not c["exp_alerts"] for c in mine), f"{alert['alert']} never shown quiet"


def test_alerts_are_the_issues_with_severity_summary_and_runbook() -> None:
    by_name = {a["alert"]: a for a in alerts()}
    assert set(by_name) == {
        "SluiceRolloutAborted",
        "SluiceRolloutPausedTooLong",
        "SluiceReconcileErrors",
        "SluiceControllerDown",
        "SluiceNoWorkingReplica",  # issue 13: replicas up, every one paused by kopf's peering
    }
    docs = DOCS.read_text()
    anchors = {heading_anchor(h) for h in re.findall(r"^#+\s+(.+)$", docs, re.M)}
    for name, alert in by_name.items():
        assert alert["labels"]["severity"] in SEVERITIES, name
        notes = alert["annotations"]
        assert notes["summary"] and notes["description"], name
        page, _, anchor = notes["runbook_url"].partition("#")
        assert page == "docs/monitoring.md" and anchor in anchors, (name, anchor)
        # annotations can only print labels the alert keeps
        keeps = parse(alert["expr"]).grouping
        for text in notes.values():
            used = set(re.findall(r"\$labels\.(\w+)", text))
            assert used <= keeps, (name, used - keeps)
        if {"namespace", "rollout"} <= keeps and "phase" not in keeps:
            assert "{{ $labels.namespace }}/{{ $labels.rollout }}" in notes["summary"], name


def heading_anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_docs_explain_every_metric_and_alert() -> None:
    docs = DOCS.read_text()
    for family in families():
        assert f"`{family}" in docs, f"docs/monitoring.md does not explain {family}"
    for alert in alerts():
        assert re.search(rf"^#+\s+{alert['alert']}\s*$", docs, re.M), alert["alert"]
