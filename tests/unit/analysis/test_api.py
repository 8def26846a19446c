"""The analysis kinds accept the contract's shape and reject everything else naming the field."""

from __future__ import annotations

import copy
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from analysis.api import (
    MAX_MEASUREMENTS,
    AnalysisRun,
    AnalysisTemplate,
    ArmValues,
    ClusterAnalysisTemplate,
    InvalidAnalysisSpec,
    Measurement,
    MetricResult,
    parse_run,
    parse_template,
)
from analysis.stats.evidence import Evidence, Outcome

ROOT = Path(__file__).resolve().parents[3]
INVALID = ROOT / "tests" / "fixtures" / "invalid-analysis"

_EVENTS = (
    'sum(increase(http_requests_total{{slot={{{{args.{slot}}}}},code=~"5.."}}[{{{{window}}}}]))'
)
_TOTAL = "sum(increase(http_requests_total{{slot={{{{args.{slot}}}}}}}[{{{{window}}}}]))"


def counts_metric(**changes: Any) -> dict[str, Any]:
    metric: dict[str, Any] = {
        "name": "error-rate",
        "kind": "counts",
        "provider": {
            "prometheus": {
                "canary": {
                    "events": _EVENTS.format(slot="canary-slot"),
                    "total": _TOTAL.format(slot="canary-slot"),
                },
                "baseline": {
                    "events": _EVENTS.format(slot="stable-slot"),
                    "total": _TOTAL.format(slot="stable-slot"),
                },
            }
        },
        "compare": {"tolerance": 1.2},
    }
    metric.update(changes)
    return metric


def threshold_metric(**changes: Any) -> dict[str, Any]:
    metric: dict[str, Any] = {
        "name": "success-rate",
        "kind": "value",
        "provider": {"prometheus": {"query": "avg(up{service={{args.service}}})"}},
        "threshold": {"min": 0.99},
    }
    metric.update(changes)
    return metric


def template_doc(*metrics: dict[str, Any], kind: str = "AnalysisTemplate") -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "checks"}
    if kind == "AnalysisTemplate":
        metadata["namespace"] = "shop"
    return {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": kind,
        "metadata": metadata,
        "spec": {
            "args": [{"name": "service"}, {"name": "namespace", "value": "shop"}],
            "metrics": list(metrics) or [counts_metric(), threshold_metric()],
        },
    }


def problems(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(InvalidAnalysisSpec) as e:
        parse_template(doc)
    return e.value.problems


# ---------------------------------------------------------------------------------------------
# valid templates
# ---------------------------------------------------------------------------------------------


def test_a_template_in_the_contract_shape_parses_with_its_defaults() -> None:
    template = parse_template(template_doc())
    assert isinstance(template, AnalysisTemplate)
    counts, value = template.spec.metrics
    assert (counts.interval_seconds, counts.initial_delay_seconds, counts.duration_seconds) == (
        30,
        0,
        None,
    )
    assert counts.compare is not None
    assert (counts.compare.method, counts.compare.direction, counts.compare.critical) == (
        "sequential",
        "increase",
        True,
    )
    assert value.threshold is not None
    assert (value.threshold.failure_limit, value.threshold.consecutive_error_limit) == (0, 4)
    assert counts.provider.prometheus.timeout_seconds == 10
    assert template.spec.inconclusive == "pause"
    assert [a.value for a in template.spec.args] == [None, "shop"]


def test_the_wire_form_is_camel_case_and_parses_back_to_the_same_model() -> None:
    metric = counts_metric(initialDelay="1m", dryRun=True, duration="10m")
    template = parse_template(template_doc(metric))
    wire = template.wire()
    assert wire["spec"]["metrics"][0]["initialDelay"] == "1m"
    assert wire["spec"]["metrics"][0]["dryRun"] is True
    assert "initial_delay" not in str(wire)
    assert parse_template(wire) == template


def test_a_cluster_template_has_no_namespace_and_the_same_spec() -> None:
    template = parse_template(template_doc(kind="ClusterAnalysisTemplate"))
    assert isinstance(template, ClusterAnalysisTemplate)
    assert template.metadata.namespace is None
    assert template.spec == parse_template(template_doc()).spec


@pytest.mark.parametrize(
    ("kind", "arm"),
    [
        ("histogram", {"buckets": "sum by (le) (increase(h_bucket[{{window}}]))"}),
        ("gauge", {"value": "avg(rate(cpu[{{window}}]))"}),
    ],
)
def test_compare_accepts_the_arm_queries_of_each_kind(kind: str, arm: dict[str, str]) -> None:
    metric = counts_metric(kind=kind, provider={"prometheus": {"canary": arm, "baseline": arm}})
    parsed = parse_template(template_doc(metric)).spec.metrics[0]
    assert parsed.kind == kind
    prom = parsed.provider.prometheus
    assert prom.query is None and prom.canary is not None and prom.baseline is not None
    for queries in (prom.canary, prom.baseline):
        assert queries.model_dump(exclude_none=True) == arm  # the query kept verbatim, no other


def test_auth_takes_a_bearer_token_or_basic_auth() -> None:
    for auth in (
        {"secretRef": {"name": "prom"}, "bearerTokenKey": "token"},
        {"secretRef": {"name": "prom"}, "usernameKey": "user", "passwordKey": "pass"},
    ):
        metric = threshold_metric(
            provider={"prometheus": {"query": "up", "auth": auth, "address": "https://p:9090"}}
        )
        prom = parse_template(template_doc(metric)).spec.metrics[0].provider.prometheus
        assert prom.address == "https://p:9090" and prom.query == "up"
        assert prom.auth is not None and prom.auth.secret_ref.name == "prom"
        keys = {
            "bearerTokenKey": prom.auth.bearer_token_key,
            "usernameKey": prom.auth.username_key,
            "passwordKey": prom.auth.password_key,
        }
        assert {k: v for k, v in keys.items() if v is not None} == {
            k: v for k, v in auth.items() if k != "secretRef"
        }


def test_queries_may_use_the_builtin_args_without_declaring_them() -> None:
    query = (
        "sum(rate(x{namespace={{args.namespace}},rollout={{ args.rollout }},"
        "svc={{args.canary-service}},rev={{args.canary-revision}}}[{{window}}]))"
    )
    doc = template_doc(threshold_metric(provider={"prometheus": {"query": query}}))
    doc["spec"]["args"] = []
    spec = parse_template(doc).spec
    assert spec.args == []
    assert spec.metrics[0].provider.prometheus.query == query


# ---------------------------------------------------------------------------------------------
# invalid templates
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file", "expected"),
    [
        (
            "both-judgements.yaml",
            "spec.metrics[0]: must set exactly one of compare, threshold (got compare, threshold)",
        ),
        ("zero-tolerance.yaml", "spec.metrics[0].compare.tolerance: must be > 0"),
        (
            "undeclared-arg.yaml",
            "spec.metrics[0].provider.prometheus.query: {{args.service}} names no declared arg",
        ),
        (
            "histogram-mann-whitney.yaml",
            "spec.metrics[0].compare.method: mann-whitney needs kind counts or gauge "
            "(got histogram)",
        ),
        (
            "quoted-placeholder.yaml",
            "spec.metrics[0].provider.prometheus.query: placeholder '{{args.service}}' at offset "
            "38 is inside a quoted string; write it bare, it renders with its own quotes",
        ),
        (
            "count-and-duration.yaml",
            "spec.metrics[0]: must set at most one of count, duration (got count, duration)",
        ),
    ],
)
def test_invalid_fixtures_name_the_field(file: str, expected: str) -> None:
    doc = yaml.safe_load((INVALID / file).read_text(encoding="utf-8"))
    assert problems(doc) == [expected]


def test_every_invalid_fixture_is_covered() -> None:
    """A fixture without an expected message would test nothing."""
    names = {p.name for p in INVALID.glob("*.yaml")}
    covered = {
        "both-judgements.yaml",
        "zero-tolerance.yaml",
        "undeclared-arg.yaml",
        "histogram-mann-whitney.yaml",
        "quoted-placeholder.yaml",
        "count-and-duration.yaml",
    }
    assert names == covered


def _prom(**fields: Any) -> dict[str, Any]:
    return {"prometheus": fields}


_ARM = {"events": "e", "total": "t"}


def _histogram(**compare: Any) -> dict[str, Any]:
    return counts_metric(
        kind="histogram",
        provider=_prom(canary={"buckets": "b"}, baseline={"buckets": "b"}),
        compare=compare,
    )


def test_latency_tolerance_reads_as_a_percentage_of_a_quantile() -> None:
    doc = _histogram(latencyTolerance={"quantile": 0.99, "increase": "12.5%"})
    template = parse_template(template_doc(doc))
    tol = template.spec.metrics[0].compare.latency_tolerance  # type: ignore[union-attr]
    assert tol is not None
    assert (tol.quantile, tol.fraction) == (0.99, 0.125)


BAD_METRICS: list[tuple[dict[str, Any], str]] = [
    (
        counts_metric(compare={"latencyTolerance": {"increase": "10%"}}),
        "spec.metrics[0].compare.latencyTolerance: applies to kind histogram only (got counts)",
    ),
    (
        _histogram(latencyTolerance={"increase": "10%"}, tolerance=1.2),
        "spec.metrics[0].compare.tolerance: does not apply with latencyTolerance (which sets the "
        "tolerance in latency units); remove it (got 1.2)",
    ),
    (
        _histogram(latencyTolerance={"increase": "0%"}),
        "spec.metrics[0].compare.latencyTolerance.increase: must be above 0% and at most 1000%",
    ),
    (
        _histogram(latencyTolerance={"increase": "0.1"}),
        "spec.metrics[0].compare.latencyTolerance.increase: must match ^[0-9]+(\\.[0-9]+)?%$",
    ),
    (
        _histogram(latencyTolerance={"quantile": 1.0, "increase": "10%"}),
        "spec.metrics[0].compare.latencyTolerance.quantile: must be < 1",
    ),
    (
        _histogram(latencyTolerance={}),
        "spec.metrics[0].compare.latencyTolerance.increase: is required",
    ),
    (counts_metric(compare={"tolerance": -1}), "spec.metrics[0].compare.tolerance: must be > 0"),
    (counts_metric(compare={"alpha": 1}), "spec.metrics[0].compare.alpha: must be < 1"),
    (counts_metric(compare={"direction": "up"}), "spec.metrics[0].compare.direction: must be one"),
    (
        counts_metric(compare={"edges": [0.5]}),
        "spec.metrics[0].compare.edges: applies to kind histogram only (got counts)",
    ),
    (
        counts_metric(
            kind="histogram",
            provider=_prom(canary={"buckets": "b"}, baseline={"buckets": "b"}),
            compare={"edges": [0.5, 0.25]},
        ),
        "spec.metrics[0].compare.edges: must be strictly increasing",
    ),
    (
        # podSpread alone is the pod model with the Rollout's pod count; podModel, like the
        # others, applies to sequential counts only
        counts_metric(compare={"podModel": True, "method": "mann-whitney"}),
        "spec.metrics[0].compare.podModel: applies to sequential kind counts only "
        "(got mann-whitney counts)",
    ),
    (counts_metric(compare={"canaryPods": 0}), "spec.metrics[0].compare.canaryPods: must be >= 1"),
    (
        counts_metric(compare={"canaryPods": 2, "podSpread": -0.1}),
        "spec.metrics[0].compare.podSpread: must be >= 0",
    ),
    (
        counts_metric(compare={"canaryPods": 2, "method": "mann-whitney"}),
        "spec.metrics[0].compare.canaryPods: applies to sequential kind counts only "
        "(got mann-whitney counts)",
    ),
    (
        counts_metric(
            kind="histogram",
            provider=_prom(canary={"buckets": "b"}, baseline={"buckets": "b"}),
            compare={"canaryPods": 2},
        ),
        "spec.metrics[0].compare.canaryPods: applies to sequential kind counts only "
        "(got sequential histogram)",
    ),
    (counts_metric(compare=None), "spec.metrics[0]: must set exactly one of compare, threshold"),
    (
        threshold_metric(threshold={"failureLimit": 2}),
        "spec.metrics[0].threshold: must set min or max (or both)",
    ),
    (
        threshold_metric(threshold={"min": 2, "max": 1}),
        "spec.metrics[0].threshold.min: must not exceed max (2 > 1)",
    ),
    (
        threshold_metric(threshold={"max": 1, "failureLimit": -1}),
        "spec.metrics[0].threshold.failureLimit: must not be negative",
    ),
    (
        threshold_metric(kind="counts"),
        "spec.metrics[0].kind: a threshold judges kind value or gauge (got counts)",
    ),
    (
        threshold_metric(provider=_prom(canary=_ARM, baseline=_ARM)),
        "spec.metrics[0].provider.prometheus.query: is required with threshold",
    ),
    (
        counts_metric(kind="value"),
        "spec.metrics[0].kind: compare needs kind counts, histogram or gauge (got value)",
    ),
    (
        counts_metric(provider=_prom(query="q")),
        "spec.metrics[0].provider.prometheus.canary: is required with compare (with baseline)",
    ),
    (
        counts_metric(provider=_prom(canary={"events": "e"}, baseline=_ARM)),
        "spec.metrics[0].provider.prometheus.canary.total: is required for kind counts",
    ),
    (
        counts_metric(provider=_prom(canary=_ARM, baseline={**_ARM, "value": "v"})),
        "spec.metrics[0].provider.prometheus.baseline.value: does not apply to kind counts",
    ),
    (
        counts_metric(provider=_prom(canary=_ARM)),
        "spec.metrics[0].provider.prometheus.baseline: is required: canary and baseline go "
        "together",
    ),
    (
        counts_metric(provider=_prom(query="q", canary=_ARM, baseline=_ARM)),
        "spec.metrics[0].provider.prometheus: must set exactly one of query or the canary and "
        "baseline pair (got both)",
    ),
    (
        threshold_metric(provider=_prom(query="q", timeout="0s")),
        "spec.metrics[0].provider.prometheus.timeout: must be longer than 0s",
    ),
    (
        threshold_metric(provider=_prom(query="q", address="prometheus:9090")),
        "spec.metrics[0].provider.prometheus.address: must match ^https?://",
    ),
    (
        threshold_metric(provider=_prom(query="q", auth={"secretRef": {"name": "s"}})),
        "spec.metrics[0].provider.prometheus.auth: must set exactly one of bearerTokenKey or "
        "usernameKey and passwordKey",
    ),
    (
        threshold_metric(
            provider=_prom(
                query="q",
                auth={"secretRef": {"name": "s"}, "bearerTokenKey": "t", "usernameKey": "u"},
            )
        ),
        "spec.metrics[0].provider.prometheus.auth.passwordKey: is required with basic auth",
    ),
    (
        threshold_metric(interval="ten minutes"),
        "spec.metrics[0].interval: must be a duration such as 30s, 5m or 1h (got 'ten minutes')",
    ),
    (threshold_metric(interval="0s"), "spec.metrics[0].interval: must be longer than 0s"),
    (threshold_metric(count=0), "spec.metrics[0].count: must be >= 1"),
    (threshold_metric(name="Error_Rate"), "spec.metrics[0].name: must match ^[a-z0-9]"),
    (threshold_metric(successCondition="x"), "spec.metrics[0].successCondition: is not a known"),
    (
        threshold_metric(provider=_prom(query="rate(x[{{interval}}])")),
        "spec.metrics[0].provider.prometheus.query: unknown placeholder '{{interval}}' at offset",
    ),
]


@pytest.mark.parametrize(("metric", "expected"), BAD_METRICS, ids=[e for _, e in BAD_METRICS])
def test_a_bad_metric_is_named_with_its_field(metric: dict[str, Any], expected: str) -> None:
    found = problems(template_doc(metric))
    assert any(p.startswith(expected) for p in found), found


def test_metric_and_arg_names_are_unique() -> None:
    doc = template_doc(threshold_metric(), threshold_metric())
    assert problems(doc) == ["spec.metrics[1].name: duplicates metrics[0].name 'success-rate'"]
    doc = template_doc(threshold_metric())
    doc["spec"]["args"].append({"name": "service", "value": "web"})
    assert problems(doc) == ["spec.args[2].name: duplicates args[0].name 'service'"]


def test_a_template_needs_metrics_and_a_known_kind() -> None:
    doc = template_doc()
    doc["spec"]["metrics"] = []
    assert problems(doc) == ["spec.metrics: must not be empty"]
    doc = template_doc(kind="Rollout")
    assert problems(doc) == [
        "kind: expected AnalysisTemplate or ClusterAnalysisTemplate, got 'Rollout'"
    ]
    with pytest.raises(InvalidAnalysisSpec, match="must be a mapping"):
        parse_template(["not", "a", "template"])


# ---------------------------------------------------------------------------------------------
# runs
# ---------------------------------------------------------------------------------------------


def run_doc(**spec: Any) -> dict[str, Any]:
    rendered = 'sum(increase(http_requests_total{slot="a"}[{{window}}]))'
    arm = {"events": rendered, "total": rendered}
    metric = counts_metric(provider={"prometheus": {"canary": arm, "baseline": arm}})
    doc: dict[str, Any] = {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {
            "name": "web-7d9f-1-step-2",
            "namespace": "shop",
            "labels": {"sluice.dev/rollout": "web", "sluice.dev/revision": "7d9f"},
            "ownerReferences": [{"kind": "Rollout", "name": "web", "uid": "u-1"}],
        },
        "spec": {
            "rollout": "web",
            "revision": "7d9f",
            "kind": "step",
            "stepIndex": 2,
            "args": [{"name": "service", "value": "web"}],
            "metrics": [metric],
        },
    }
    doc["spec"].update(spec)
    return doc


def test_a_run_keeps_unknown_metadata_and_reads_its_status() -> None:
    evidence = Evidence(
        method="sequential-rate-ratio",
        outcome=Outcome.CONTINUE,
        estimate=1.05,
        lower=0.8,
        upper=float("inf"),
        log_e_value=0.3,
        log_threshold=4.6,
        events=12,
        rule="abort when log e-value >= log(1/alpha)",
    )
    doc = run_doc()
    doc["status"] = {
        "phase": "Running",
        "startedAt": "2025-01-01T00:00:00Z",
        "metrics": [
            {
                "name": "error-rate",
                "phase": "Running",
                "measurements": [
                    {
                        "at": "2025-01-01T00:00:30Z",
                        "phase": "Successful",
                        "values": {"canaryEvents": 1, "canaryTotal": 100},
                    }
                ],
                "successful": 1,
                "evidence": evidence.model_dump(mode="json", by_alias=True, exclude_none=True),
            }
        ],
        "state": {"error-rate": {"version": 1, "loglik": [0.1, -0.2]}},
    }
    run = parse_run(doc)
    assert isinstance(run, AnalysisRun)
    assert run.metadata.model_extra == {"ownerReferences": doc["metadata"]["ownerReferences"]}
    assert run.status is not None and run.status.metrics[0].evidence == evidence
    assert evidence.upper is None  # unbounded: JSON has no infinity, so the end is absent
    values = run.status.metrics[0].measurements[0].values
    assert values == ArmValues(canary_events=1, canary_total=100)
    assert run.status.state["error-rate"]["loglik"] == [0.1, -0.2]
    assert parse_run(run.wire()) == run
    assert run.spec.alpha == 0.05 and run.spec.attempt == 1


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"stepIndex": None}, "spec.stepIndex: is required for kind step"),
        ({"args": [{"name": "service"}]}, "spec.args[0].value: is required in a run"),
        ({"kind": "analysis"}, "spec.kind: must be one of"),
        ({"alpha": 0}, "spec.alpha: must be > 0"),
        ({"attempt": 0}, "spec.attempt: must be >= 1"),
    ],
)
def test_a_bad_run_is_named_with_its_field(change: dict[str, Any], expected: str) -> None:
    doc = run_doc()
    for key, value in change.items():
        if value is None:
            doc["spec"].pop(key)
        else:
            doc["spec"][key] = value
    with pytest.raises(InvalidAnalysisSpec) as e:
        parse_run(doc)
    assert any(p.startswith(expected) for p in e.value.problems), e.value.problems


def test_a_run_refuses_queries_with_args_left_unrendered() -> None:
    doc = run_doc()
    doc["spec"]["metrics"][0]["provider"]["prometheus"]["canary"]["events"] = "x{a={{args.app}}}"
    with pytest.raises(InvalidAnalysisSpec) as e:
        parse_run(doc)
    assert e.value.problems == [
        "spec.metrics[0].provider.prometheus.canary.events: {{args.app}} names no declared arg"
    ]


def test_background_runs_need_no_step_and_other_kinds_are_refused() -> None:
    doc = run_doc(kind="background")
    doc["spec"].pop("stepIndex")
    assert parse_run(doc).spec.step_index is None
    with pytest.raises(InvalidAnalysisSpec, match="expected AnalysisRun"):
        parse_run({**doc, "kind": "AnalysisTemplate"})


def test_a_metric_result_keeps_only_the_last_measurements() -> None:
    result = MetricResult(name="error-rate")
    for i in range(MAX_MEASUREMENTS + 5):
        result.record(
            Measurement(at=datetime(2025, 1, 1, 0, 0, i, tzinfo=UTC), phase="Successful", value=i)
        )
    assert len(result.measurements) == MAX_MEASUREMENTS
    assert [m.value for m in result.measurements] == list(range(5, MAX_MEASUREMENTS + 5))


def test_analysis_api_imports_nothing_from_rollouts() -> None:
    code = (
        "import sys, analysis.api, analysis.templating; "
        "bad = [m for m in sys.modules if m == 'rollouts' or m.startswith('rollouts.')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_templates_are_immutable_so_shared_copies_cannot_drift() -> None:
    template = parse_template(template_doc())
    with pytest.raises(ValueError):
        template.spec.metrics[0].name = "other"  # type: ignore[misc]
    assert copy.deepcopy(template) == template
