"""``sluice convert``: nothing dropped silently, conditions and weights translated faithfully,
and output that would not be accepted is said to be so."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from rollouts.cli.main import cli
from rollouts.convert import convert_documents
from rollouts.convert.argo import _bounds

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "convert"


def inputs(case: str) -> list[Any]:
    return list(yaml.safe_load_all((FIXTURES / case / "input.yaml").read_text()))


def notes_for(docs: list[Any]) -> dict[str, tuple[str, str]]:
    result = convert_documents(("in.yaml", d) for d in docs)
    return {n.field: (n.severity, n.reason) for n in result.notes}


def test_a_field_the_converter_does_not_know_is_reported_wherever_it_is() -> None:
    docs = inputs("argo-canary-istio")
    canary = docs[0]["spec"]["strategy"]["canary"]
    canary["shinyNewField"] = True
    canary["steps"][0]["alsoNew"] = 3
    canary["trafficRouting"]["istio"]["virtualService"]["weightsFrom"] = "x"
    docs[1]["spec"]["metrics"][0]["provider"]["prometheus"]["newKnob"] = 1
    notes = notes_for(docs)
    for field in (
        "spec.strategy.canary.shinyNewField",
        "spec.strategy.canary.steps[0].alsoNew",
        "spec.strategy.canary.trafficRouting.istio.virtualService.weightsFrom",
        "spec.metrics[0].provider.prometheus.newKnob",
    ):
        assert notes[field] == ("dropped", "unknown to sluice convert: not translated"), field


RESHAPED = {
    "successCondition",
    "failureCondition",
    "stepWeight",
    "maxWeight",
    "interval",
    "timeout",
    "query",
    "metricName",
}
"""Fields translated into another shape (a condition into min/max, Flagger's weights into steps,
a timeout in seconds into a duration, placeholders rewritten in a query, a dryRun pattern into each
matching metric's dryRun), so their values do not reappear as they were."""


def test_every_leaf_of_the_fixtures_is_translated_or_reported() -> None:
    """Remove from each input what the output carries (by value) and what the report names:
    nothing may be left over."""
    missing = []
    for case in sorted(p.name for p in FIXTURES.iterdir()):
        docs = [d for d in inputs(case) if d]
        result = convert_documents((case, d) for d in docs)
        reported = {n.field for n in result.notes}
        out_values = _leaf_values(result.documents)
        for doc in docs:
            if any(n.field == "." and doc["metadata"]["name"] in n.source for n in result.notes):
                continue  # reported as a whole (a Deployment moved, a MetricTemplate merged)
            for path, value in _leaves(doc):
                last = path.rsplit(".", 1)[-1]
                if path.split(".")[0] in ("apiVersion", "kind") or last in RESHAPED:
                    continue
                covered = value in out_values or any(
                    path == r or path.startswith(r + ".") or path.startswith(r + "[")
                    for r in reported
                )
                if not covered:
                    missing.append(f"{case}: {path}={value!r}")
    assert missing == [], "\n".join(missing)


def _leaves(v: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(v, dict):
        return [x for k, x2 in v.items() for x in _leaves(x2, f"{path}.{k}" if path else k)]
    if isinstance(v, list):
        return [x for i, x2 in enumerate(v) for x in _leaves(x2, f"{path}[{i}]")] or [(path, v)]
    return [(path, v)]


def _leaf_values(docs: list[dict[str, Any]]) -> set[Any]:
    out: set[Any] = set()
    for d in docs:
        for _, value in _leaves(d):
            out.add(value if not isinstance(value, list) else None)
            if isinstance(value, str):
                out.update(value.split())  # a query's pieces, after placeholders were rewritten
    return out


@pytest.mark.parametrize(
    ("expr", "bounds"),
    [
        ("result[0] >= 0.95", [(">=", 0.95)]),
        ("result < 2", [("<", 2.0)]),
        ("0.5 > result[0]", [("<", 0.5)]),
        ("result[0] >= 0 && result[0] <= 1e3", [(">=", 0.0), ("<=", 1000.0)]),
        ("len(result) == 0 || result[0] < 0.01", None),
        ("isNaN(result)", None),
        ("result[0] == 1", None),
        ("result[1] > 3", None),
    ],
)
def test_argo_conditions_become_bounds_only_when_they_are_plain_comparisons(
    expr: str, bounds: list[tuple[str, float]] | None
) -> None:
    assert _bounds(expr) == bounds


def _template(success: str | None = None, failure: str | None = None) -> dict[str, Any]:
    metric: dict[str, Any] = {
        "name": "m",
        "interval": "1m",
        "provider": {"prometheus": {"query": 'sum(up{job="success"})'}},
    }
    if success:
        metric["successCondition"] = success
    if failure:
        metric["failureCondition"] = failure
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": "t"},
        "spec": {"metrics": [metric]},
    }


@pytest.mark.parametrize(
    ("success", "failure", "threshold"),
    [
        ("result[0] >= 0.9", None, {"min": 0.9}),
        (None, "result[0] >= 0.9", {"max": 0.9}),
        (None, "result[0] < 0.2", {"min": 0.2}),
        ("result[0] > 0.1", "result[0] > 5", {"min": 0.1, "max": 5.0}),
    ],
)
def test_success_and_failure_conditions_give_min_and_max(
    success: str | None, failure: str | None, threshold: dict[str, float]
) -> None:
    result = convert_documents([("t.yaml", _template(success, failure))])
    (doc,) = result.documents
    got = doc["spec"]["metrics"][0]["threshold"]
    assert {k: got[k] for k in ("min", "max") if k in got} == threshold
    assert not result.invalid


def test_an_argo_metric_without_interval_or_count_measures_once() -> None:
    doc = _template("result[0] >= 0.9")
    del doc["spec"]["metrics"][0]["interval"]
    (out,) = convert_documents([("t.yaml", doc)]).documents
    assert out["spec"]["metrics"][0]["count"] == 1


def test_quoted_args_lose_their_quotes_and_a_placeholder_inside_a_regex_is_flagged() -> None:
    doc = _template("result[0] >= 0.9")
    doc["spec"]["args"] = [{"name": "svc"}]
    prom = doc["spec"]["metrics"][0]["provider"]["prometheus"]
    prom["query"] = 'sum(up{service="{{ args.svc }}"})'
    (out,) = convert_documents([("t.yaml", doc)]).documents
    assert (
        out["spec"]["metrics"][0]["provider"]["prometheus"]["query"]
        == "sum(up{service={{args.svc}}})"
    )
    prom["query"] = 'sum(up{service=~"{{args.svc}}-.*"})'
    result = convert_documents([("t.yaml", doc)])
    (problem,) = result.invalid
    assert "spec.metrics[0].provider.prometheus.query" in problem.reason


def test_flagger_weights_follow_its_scheduler() -> None:
    docs = inputs("flagger-canary-istio")
    canary = docs[3]
    analysis = canary["spec"]["analysis"]

    def weights(**kw: Any) -> list[int]:
        a = {k: v for k, v in analysis.items() if k not in ("stepWeight", "maxWeight")} | kw
        d = copy.deepcopy(docs)
        d[3]["spec"]["analysis"] = a
        out = convert_documents(("f", x) for x in d).documents
        (rollout,) = [x for x in out if x["kind"] == "Rollout"]
        steps = rollout["spec"]["strategy"]["canary"]["steps"]
        return [s["setWeight"] for s in steps if "setWeight" in s]

    assert weights(stepWeight=20, maxWeight=50) == [20, 40, 50]
    assert weights(stepWeight=25) == [25, 50, 75, 100]
    assert weights(stepWeights=[1, 5, 30, 120]) == [1, 5, 30, 100]


def test_a_canary_adopts_its_deployment_and_without_its_manifest_asks_for_replicas(
    tmp_path: Path,
) -> None:
    with_it = convert_documents(("f", d) for d in inputs("flagger-bluegreen")).documents
    kinds = [(d["kind"], d["metadata"]["name"]) for d in with_it]
    assert ("Deployment", "billing") in kinds  # kept as it is: the Rollout adopts it
    (rollout,) = [d for d in with_it if d["kind"] == "Rollout"]
    assert rollout["spec"]["workloadRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "billing",
        "scaleDown": "onSuccess",
    }
    assert rollout["spec"]["replicas"] == 3 and "template" not in rollout["spec"]

    docs = [d for d in inputs("flagger-bluegreen") if d["kind"] != "Deployment"]
    path = tmp_path / "canary.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    result = CliRunner().invoke(cli, ["convert", str(path)])
    assert result.exit_code == 0, result.stderr
    assert "todo: set spec.replicas: Deployment 'billing' was not among the inputs" in result.stderr
    assert "is invalid" not in result.stderr


def test_argo_workload_ref_carries_over() -> None:
    doc = inputs("argo-bluegreen")[0]
    del doc["spec"]["template"], doc["spec"]["selector"]
    doc["spec"]["workloadRef"] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "search",
        "scaleDown": "onsuccess",
    }
    result = convert_documents([("r.yaml", doc)])
    assert not result.invalid
    (rollout,) = result.documents
    assert rollout["spec"]["workloadRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "search",
        "scaleDown": "onSuccess",
    }
    assert not any(n.field.startswith("spec.workloadRef") for n in result.notes)


def test_other_kinds_are_reported_not_converted() -> None:
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {}}
    result = convert_documents([("s.yaml", service)])
    assert result.documents == []
    (note,) = result.notes
    assert note.severity == "dropped" and "v1 Service" in note.reason


def test_an_unused_metric_template_is_reported() -> None:
    template = inputs("flagger-canary-istio")[1]
    (note,) = convert_documents([("m.yaml", template)]).notes
    assert note.severity == "dropped" and "no Canary" in note.reason


def test_strict_fails_on_dropped_fields_and_plain_mode_does_not(tmp_path: Path) -> None:
    src = FIXTURES / "argo-bluegreen" / "input.yaml"
    out = tmp_path / "out.yaml"
    report = tmp_path / "report.txt"
    plain = CliRunner().invoke(cli, ["convert", str(src), "-o", str(out), "--report", str(report)])
    assert plain.exit_code == 0 and plain.stdout == ""
    assert yaml.safe_load_all(out.read_text())
    assert "dropped" in report.read_text()
    strict = CliRunner().invoke(cli, ["convert", "--strict", str(src), "-o", str(out)])
    assert strict.exit_code == 1


def test_an_unreadable_file_is_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["convert", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2
    assert "missing.yaml" in result.stderr
