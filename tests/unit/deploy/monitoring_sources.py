"""Where deploy/monitoring keeps its PromQL, and what the controller actually exposes.

Both sides are read from the real artefacts: the expressions from the dashboard JSON and the
PrometheusRule, the metrics from a ``Telemetry`` registry that went through the controller's own
recording calls and came back through Prometheus's text exposition, so a name that the code
builds differently from how it is scraped (``_total``, ``_bucket``) is compared as scraped.
"""

from __future__ import annotations

import json
import re
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from rollouts.api.rollout import AnalysisRunRecord, Phase, RolloutStatus
from rollouts.api.validation import parse_rollout
from rollouts.telemetry import Telemetry
from tests.support.rollouts import ISTIO, rollout_doc
from tests.unit.deploy.rbac_scan import REPO

MONITORING = REPO / "deploy" / "monitoring"
DASHBOARD = MONITORING / "sluice-dashboard.json"
RULES = MONITORING / "prometheus-rules.yaml"
RULES_TEST = MONITORING / "rules_test.yaml"
DOCS = REPO / "docs" / "monitoring.md"

# Labels Prometheus adds to every scraped series of a ServiceMonitor target (the Prometheus
# Operator's relabelling), and the metric it records per target itself.
TARGET_LABELS = frozenset(
    {"job", "instance", "namespace", "pod", "service", "endpoint", "container"}
)
PROMETHEUS_OWN = {"up": TARGET_LABELS}
# Grafana's built-in interval variables
GRAFANA_BUILTINS = frozenset({"__rate_interval", "__interval", "__range", "__interval_ms"})

# Label values the controller can write, from the models it writes them from
PHASES = frozenset(typing.get_args(Phase)) | {"Unknown"}  # "Unknown": status without a phase
VERDICT_RESULTS = frozenset(
    p.lower() for p in typing.get_args(AnalysisRunRecord.model_fields["phase"].annotation)
)
LABEL_VALUES = {
    "phase": PHASES,
    "to_phase": PHASES,
    "from_phase": PHASES | {"None"},  # a Rollout's first phase comes from "None"
    "result": VERDICT_RESULTS,
}


def exported_metrics() -> dict[str, frozenset[str]]:
    """Sample name -> label names, as Prometheus scrapes them from the controller.

    A labelled metric shows no sample until it has a child, so every metric is driven through
    the controller's own recording calls; a family that still has none fails here, telling
    whoever adds a metric to record it in this function too."""
    t = Telemetry()
    rollout = parse_rollout(rollout_doc(steps=[{"setWeight": 25}, {"pause": {}}], router=ISTIO))
    after = RolloutStatus.model_validate(
        {
            "phase": "Progressing",
            "weights": {"canary": 25},
            "currentStepIndex": 0,
            "analysisRuns": [{"name": "web-1", "kind": "step", "phase": "Failed"}],
        }
    )
    t.observe(rollout, None, after)
    with t.timed():
        pass
    t.reconcile_errors.inc()
    t.working("sluice.dev")
    text = generate_latest(t.registry).decode()
    out: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        assert family.samples, f"{family.name} has no sample: record it in exported_metrics()"
        for sample in family.samples:
            out.setdefault(sample.name, set()).update(sample.labels)
    return {name: frozenset(labels) for name, labels in out.items()}


def families() -> set[str]:
    """The metric families (``sluice_reconcile_errors``, not ``..._total``) the controller has."""
    return {f.name for f in Telemetry().registry.collect()}


# ---------------------------------------------------------------------------------------------
# expressions
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expr:
    where: str  # a human pointer: 'panel 9 "Canary weight" target A', 'alert SluiceX'
    promql: str
    legend: str = ""
    label_values_of: str | None = None  # for a templating label_values(..., label) query


LABEL_VALUES_QUERY = re.compile(
    r"^\s*label_values\((?P<expr>.*),\s*(?P<label>[a-zA-Z_]\w*)\s*\)\s*$"
)


def load_dashboard(path: Path = DASHBOARD) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def walk_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside (collapsed) rows."""
    for panel in panels:
        yield panel
        yield from walk_panels(panel.get("panels", []))


def dashboard_exprs(dashboard: dict[str, Any]) -> list[Expr]:
    out: list[Expr] = []
    for panel in walk_panels(dashboard["panels"]):
        for t in panel.get("targets", []):
            where = f'panel {panel["id"]} "{panel["title"]}" target {t.get("refId")}'
            out.append(Expr(where, t["expr"], t.get("legendFormat", "")))
    for a in dashboard.get("annotations", {}).get("list", []):
        if "expr" in a:
            out.append(Expr(f'annotation "{a["name"]}"', a["expr"], a.get("textFormat", "")))
    for v in dashboard.get("templating", {}).get("list", []):
        if v["type"] != "query":
            continue
        query = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        m = LABEL_VALUES_QUERY.match(query)
        assert m, f"variable {v['name']}: only label_values(selector, label) is modelled: {query}"
        out.append(Expr(f"variable ${v['name']}", m["expr"], label_values_of=m["label"]))
    return out


def rule_groups(path: Path = RULES) -> list[dict[str, Any]]:
    doc = yaml.safe_load(path.read_text())
    assert doc["apiVersion"] == "monitoring.coreos.com/v1" and doc["kind"] == "PrometheusRule"
    groups: list[dict[str, Any]] = doc["spec"]["groups"]
    return groups


def alerts(path: Path = RULES) -> list[dict[str, Any]]:
    return [r for g in rule_groups(path) for r in g["rules"] if "alert" in r]


def rule_exprs(path: Path = RULES) -> list[Expr]:
    return [
        Expr(f"rule {r.get('alert') or r.get('record')}", r["expr"])
        for g in rule_groups(path)
        for r in g["rules"]
    ]


GRAFANA_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


def grafana_variables(text: str) -> set[str]:
    return {next(g for g in m.groups() if g) for m in GRAFANA_VARIABLE.finditer(text)}


def substitute(promql: str, values: dict[str, str]) -> str:
    """A dashboard expression as Grafana would send it, for promtool to parse and evaluate."""

    def one(m: re.Match[str]) -> str:
        name = next(g for g in m.groups() if g)
        return values[name]

    return GRAFANA_VARIABLE.sub(one, promql)
