"""AnalysisVerdicts behind the engine: runs created from templates with rendered args, verdicts
with evidence for every analysis kind, and resolution problems as Error verdicts, never crashes."""

from __future__ import annotations

from typing import Any

import pytest

from analysis.api import InvalidAnalysisSpec, parse_template
from analysis.store.memory import MemoryAnalysisStore
from analysis.store.port import SecretNotFound
from rollouts.api.validation import parse_rollout
from rollouts.simulator.simulation import SimOptions, Simulation
from rollouts.verdicts.analysis_runs import AnalysisVerdicts, builtin_args
from simulations.simulated_provider import SCENARIOS
from tests.support.rollouts import rollout_doc


def counts_template(
    name: str = "errors",
    *,
    args: list[dict[str, Any]] | None = None,
    query_arg: str = "canary-service",
    count: int = 20,
    inconclusive: str = "pause",
) -> dict[str, Any]:
    q = "sum(increase(http_requests_total{service={{args." + query_arg + "}}}[{{window}}]))"
    arm = {"events": q, "total": q}
    return {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {
            "args": args or [],
            "inconclusive": inconclusive,
            "metrics": [
                {
                    "name": "error-rate",
                    "kind": "counts",
                    "interval": "30s",
                    "count": count,
                    "provider": {"prometheus": {"canary": arm, "baseline": arm}},
                    "compare": {"tolerance": 1.25},
                }
            ],
        },
    }


def run(
    doc: dict[str, Any], scenario: str, templates: list[dict[str, Any]], **kw: Any
) -> Simulation:
    opts = SimOptions(scenario=SCENARIOS[scenario], templates=tuple(templates), **kw)
    sim = Simulation(parse_rollout(doc), opts)
    sim.run()
    return sim


STEPS = [{"setWeight": 20}, {"analysis": {"templates": [{"templateName": "errors"}]}}]


def test_run_is_created_with_rendered_builtin_args_and_labels() -> None:
    sim = run(rollout_doc(steps=STEPS), "healthy", [counts_template()])
    assert sim.store is not None
    (stored,) = sim.store.runs.values()
    assert stored.metadata.labels is not None
    assert stored.metadata.labels["sluice.dev/rollout"] == "web"
    q = stored.spec.metrics[0].provider.prometheus.canary
    assert q is not None and q.events == (
        'sum(increase(http_requests_total{service="web-canary"}[{{window}}]))'
    )
    args = {a.name: a.value for a in stored.spec.args}
    assert args["canary-service"] == "web-canary" and args["stable-service"] == "web"
    assert stored.status is not None and stored.status.phase == "Successful"
    assert stored.status.metrics[0].evidence is not None
    assert len(stored.status.metrics[0].measurements) <= 10


def test_arg_values_are_escaped_as_promql_strings() -> None:
    template = counts_template(args=[{"name": "svc"}], query_arg="svc")
    steps = [
        {"setWeight": 20},
        {
            "analysis": {
                "templates": [{"templateName": "errors"}],
                "args": [{"name": "svc", "value": '"} or vector(1) #'}],
            }
        },
    ]
    sim = run(rollout_doc(steps=steps), "healthy", [template])
    assert sim.store is not None
    (stored,) = sim.store.runs.values()
    q = stored.spec.metrics[0].provider.prometheus.canary
    assert q is not None and q.events is not None
    # one string token: the quote and the brace are escaped, nothing of the value is PromQL
    assert 'service="\\"\\x7d or vector(1) #"}' in q.events


def test_missing_arg_is_an_error_verdict_naming_it() -> None:
    template = counts_template(args=[{"name": "svc"}], query_arg="svc")
    sim = run(rollout_doc(steps=STEPS), "healthy", [template])
    st = sim.rollout.status
    assert st is not None and st.phase == "Degraded"
    assert "'svc'" in st.message and "no value" in st.message


def test_undeclared_arg_is_an_error_verdict() -> None:
    steps = [
        {"setWeight": 20},
        {
            "analysis": {
                "templates": [{"templateName": "errors"}],
                "args": [{"name": "typo", "value": "x"}],
            }
        },
    ]
    st = run(rollout_doc(steps=steps), "healthy", [counts_template()]).rollout.status
    assert st is not None and st.phase == "Degraded" and "'typo'" in st.message


def test_template_that_fails_validation_is_an_error_verdict_not_a_crash() -> None:
    """A store raises InvalidAnalysisSpec for a stored template that no longer validates (applied
    before the CRD's rules, or under an older schema); the reconcile must not crash on it."""

    class BrokenStore(MemoryAnalysisStore):
        def get_template(self, namespace: str, name: str, cluster_scope: bool = False) -> Any:
            raise InvalidAnalysisSpec(["spec.metrics[0].compare.tolerance: must be > 0"])

    opts = SimOptions(scenario=SCENARIOS["healthy"], templates=(counts_template(),))
    sim = Simulation(parse_rollout(rollout_doc(steps=STEPS)), opts)
    assert isinstance(sim.verdicts, AnalysisVerdicts)
    sim.verdicts.store = BrokenStore()
    sim.run()
    st = sim.rollout.status
    assert st is not None and st.phase == "Degraded"
    assert "errors" in st.message and "compare.tolerance" in st.message


def test_background_failure_aborts() -> None:
    doc = rollout_doc(
        steps=[{"setWeight": 20}, {"pause": {"duration": "20m"}}],
        background={"templates": [{"templateName": "errors"}], "startingStep": 1},
    )
    st = run(doc, "error-regression", [counts_template()]).rollout.status
    assert st is not None and st.phase == "Degraded"
    assert "background analysis" in st.message and "'error-rate'" in st.message


def test_inconclusive_pauses_and_template_policy_abort_aborts() -> None:
    paused = run(rollout_doc(steps=STEPS), "low-traffic", [counts_template(count=4)])
    st = paused.rollout.status
    assert st is not None and st.phase == "Paused"
    assert any(p.reason == "InconclusiveAnalysis" for p in st.pause_conditions)
    aborted = run(
        rollout_doc(steps=STEPS), "low-traffic", [counts_template(count=4, inconclusive="abort")]
    )
    st = aborted.rollout.status
    assert st is not None and st.phase == "Degraded" and "policy abort" in st.message


def test_blue_green_pre_promotion_failure_aborts_before_the_switch() -> None:
    doc = rollout_doc(
        blue_green={
            "prePromotionAnalysis": {"templates": [{"templateName": "errors"}]},
            "previewReplicaCount": 1,
        }
    )
    # a preview gets no production traffic; the simulator sends it test traffic (as smoke tests
    # would), on which the regression shows before production ever reaches the new pods
    sim = run(doc, "error-regression", [counts_template(count=4)])
    st = sim.rollout.status
    assert st is not None and st.phase == "Degraded"
    assert st.analysis_runs[0].kind == "prePromotion" and st.analysis_runs[0].phase == "Failed"
    assert "pre-promotion analysis" in st.message and "'error-rate'" in st.message
    assert [h.outcome for h in st.history] == ["Aborted"]  # never switched, never promoted
    assert st.stable_revision != st.current_revision


def absolute_template() -> dict[str, Any]:
    return {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": "error-ratio", "namespace": "ns"},
        "spec": {
            "metrics": [
                {
                    "name": "error-ratio",
                    "kind": "value",
                    "interval": "30s",
                    "count": 4,
                    "provider": {"prometheus": {"query": "error ratio of {{args.canary-service}}"}},
                    "threshold": {"max": 0.02},
                }
            ]
        },
    }


def test_blue_green_post_promotion_failure_switches_back() -> None:
    doc = rollout_doc(
        blue_green={"postPromotionAnalysis": {"templates": [{"templateName": "error-ratio"}]}}
    )
    sim = run(doc, "error-regression", [absolute_template()])
    st = sim.rollout.status
    assert st is not None
    run_ = next(r for r in st.analysis_runs if r.kind == "postPromotion")
    assert run_.metrics and run_.metrics[0].name == "error-ratio"
    ev = run_.metrics[0].evidence
    assert ev is not None and ev.method == "argo-threshold" and ev.estimate is not None
    assert st.abort is not None and "post-promotion" in st.abort.message
    assert st.abort.metric == "error-ratio"


def test_memory_store_secrets_and_idempotent_create() -> None:
    store = MemoryAnalysisStore()
    store.secrets[("ns", "prom")] = {"token": "t"}
    assert store.resolve_secret("ns", "prom", "token") == "t"
    with pytest.raises(SecretNotFound, match="no key 'user'"):
        store.resolve_secret("ns", "prom", "user")
    with pytest.raises(SecretNotFound, match="ns/other"):
        store.resolve_secret("ns", "other", "token")
    store.add_template(parse_template(counts_template()))
    assert store.get_template("ns", "errors") is not None
    assert store.get_template("ns", "errors", cluster_scope=True) is None


def test_builtin_args_for_blue_green_map_preview_to_canary() -> None:
    r = parse_rollout(rollout_doc(blue_green={}))
    args = builtin_args(r)
    assert args["canary-service"] == "web-preview" and args["stable-service"] == "web"


def test_a_run_stopped_before_its_verdict_says_stopped_and_is_not_measured_again() -> None:
    """An abort during an analysis step stops its run: the AnalysisRun's own phase must say so
    (not stay Running forever in `kubectl get analysisruns`), and no tick measures it again."""
    steps = [{"setWeight": 20}, {"analysis": {"templates": [{"templateName": "errors"}]}}]
    opts = SimOptions(
        scenario=SCENARIOS["healthy"], templates=(counts_template(count=200),), abort_at=2
    )
    sim = Simulation(parse_rollout(rollout_doc(steps=steps)), opts)
    sim.run()
    assert sim.store is not None
    (stored,) = sim.store.runs.values()
    assert stored.status is not None and stored.status.phase == "Stopped"
    assert stored.status.finished_at is not None and "stopped" in stored.status.message
    taken = [len(m.measurements) for m in stored.status.metrics]
    sim.t += 600
    sim.step()
    (again,) = sim.store.runs.values()
    assert again.status is not None
    assert [len(m.measurements) for m in again.status.metrics] == taken
