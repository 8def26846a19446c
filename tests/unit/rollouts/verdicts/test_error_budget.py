"""One error budget per Rollout, split once: what the controller does with the three ways it
used to be overspent (explicit alphas over it, a fallback share for a metric left with nothing,
a metric judged by background and step analysis drawing twice).

The controller meets the templates only when an analysis starts (they are separate objects it
reads then), so an overspent budget is the run's Error verdict naming the field, and the engine
aborts with it; ``sluice lint`` reports the same message before anything is applied."""

from __future__ import annotations

from typing import Any

from rollouts.api.validation import parse_rollout
from rollouts.simulator.simulation import SimOptions, Simulation
from simulations.simulated_provider import SCENARIOS
from tests.support.rollouts import rollout_doc


def template(name: str, metric: str, alpha: float | None) -> dict[str, Any]:
    q = "sum(increase(http_requests_total{service={{args.canary-service}}}[{{window}}]))"
    compare: dict[str, Any] = {"tolerance": 1.25}
    if alpha is not None:
        compare["alpha"] = alpha
    return {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {
            "metrics": [
                {
                    "name": metric,
                    "kind": "counts",
                    "interval": "30s",
                    "count": 10,
                    "provider": {
                        "prometheus": {
                            "canary": {"events": q, "total": q},
                            "baseline": {"events": q, "total": q},
                        }
                    },
                    "compare": compare,
                }
            ]
        },
    }


def step(*templates: str) -> dict[str, Any]:
    return {"analysis": {"templates": [{"templateName": t} for t in templates]}}


def simulate(doc: dict[str, Any], *templates: dict[str, Any]) -> Simulation:
    opts = SimOptions(scenario=SCENARIOS["healthy"], templates=templates)
    sim = Simulation(parse_rollout(doc), opts)
    sim.run()
    return sim


def test_explicit_alphas_over_the_budget_abort_naming_the_field() -> None:
    doc = rollout_doc(steps=[{"setWeight": 20}, step("a"), step("b")])
    sim = simulate(doc, template("a", "errors", 0.05), template("b", "latency", 0.04))
    st = sim.rollout.status
    assert st is not None and st.phase == "Degraded"
    assert (
        "template b: spec.metrics[0].compare.alpha: 0.04 brings the explicit alphas to 0.09"
        in st.message
    )
    assert sim.store is not None and sim.store.runs == {}  # nothing measured on 0.09


def test_a_metric_left_with_nothing_aborts_instead_of_taking_a_fallback_share() -> None:
    doc = rollout_doc(steps=[{"setWeight": 20}, step("a", "b")])
    sim = simulate(doc, template("a", "errors", 0.05), template("b", "latency", None))
    st = sim.rollout.status
    assert st is not None and st.phase == "Degraded"
    assert "template b: spec.metrics[0].compare.alpha: not set, and no alpha is left" in st.message


def test_a_metric_in_background_and_step_analysis_draws_once() -> None:
    doc = rollout_doc(
        steps=[{"setWeight": 20}, step("errors", "latency")],
        background={"templates": [{"templateName": "errors"}]},
    )
    sim = simulate(doc, template("errors", "errors", None), template("latency", "latency", None))
    assert sim.store is not None
    spent: dict[str, float] = {}
    for run in sim.store.runs.values():
        for m in run.spec.metrics:
            assert m.compare is not None and m.compare.alpha is not None
            spent[f"{run.spec.kind}/{m.name}"] = m.compare.alpha
    assert spent == {"background/errors": 0.0125, "step/errors": 0.0125, "step/latency": 0.025}
    assert sum(spent.values()) == 0.05
    st = sim.rollout.status
    assert st is not None and st.phase != "Degraded", st.message  # a budget that splits: no Error
