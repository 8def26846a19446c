"""The reconcile cycle's phases: analyses are ticked first and are the only analysis writes;
observe reads and writes nothing; status is written once per cycle, and not at all when it did
not change. Driven through the simulator's ports (memory cluster, AnalysisRuns in memory)."""

from __future__ import annotations

from typing import Any

from analysis.store.memory import MemoryAnalysisStore
from rollouts.api.rollout import Rollout, RolloutStatus
from rollouts.api.validation import parse_rollout
from rollouts.engine.plan import AnalysisObservation, StartAnalysis
from rollouts.reconcile import cycle, observe, tick
from rollouts.simulator.simulation import SimOptions, Simulation, next_revision
from simulations.simulated_provider import SCENARIOS
from tests.support.rollouts import rollout_doc

Q = "sum(increase(http_requests_total{service={{args.canary-service}}}[{{window}}]))"
TEMPLATE: dict[str, Any] = {
    "apiVersion": "sluice.dev/v1alpha1",
    "kind": "AnalysisTemplate",
    "metadata": {"name": "errors", "namespace": "ns"},
    "spec": {
        "metrics": [
            {
                "name": "errors",
                "kind": "counts",
                "interval": "60s",
                "count": 30,
                "provider": {
                    "prometheus": {
                        "canary": {"events": Q, "total": Q},
                        "baseline": {"events": Q, "total": Q},
                    }
                },
                "compare": {"tolerance": 1.25},
            }
        ]
    },
}
STEPS = [{"setWeight": 20}, {"analysis": {"templates": [{"templateName": "errors"}]}}]


def analysing() -> Simulation:
    """A simulation stopped while its step analysis runs."""
    opts = SimOptions(scenario=SCENARIOS["healthy"], templates=(TEMPLATE,))
    sim = Simulation(parse_rollout(rollout_doc(steps=STEPS)), opts)
    assert sim.settle() == "Healthy"
    sim.rollout = next_revision(sim.rollout, sim.opts)
    for _ in range(200):
        sim.step()
        st = sim.rollout.status
        if st is not None and any(r.phase == "Running" for r in st.analysis_runs):
            return sim
        sim.t += 1.0
    raise AssertionError("the analysis never started")


def runs(sim: Simulation) -> dict[Any, Any]:
    assert isinstance(sim.store, MemoryAnalysisStore)
    return {k: v.model_dump() for k, v in sim.store.runs.items()}


def test_observe_writes_nothing_even_with_measurements_due() -> None:
    sim = analysing()
    sim.t += 600  # ten windows came due
    before = runs(sim)
    first = observe(sim.rollout, sim.ports)
    again = observe(sim.rollout, sim.ports)
    assert runs(sim) == before  # no run created, ticked or pruned
    assert first.analysis == again.analysis
    tick(sim.rollout, sim.ports)
    assert runs(sim) != before  # the tick is where the measurements are taken


def test_a_cycle_ticks_before_it_observes_and_writes_status_once() -> None:
    sim = analysing()
    calls: list[str] = []
    verdicts, cluster = sim.ports.verdicts, sim.ports.cluster

    class Recording:
        def tick(self, rollout: Rollout) -> None:
            calls.append("tick")
            verdicts.tick(rollout)

        def observe(self, rollout: Rollout) -> dict[str, AnalysisObservation]:
            calls.append("observe")
            return verdicts.observe(rollout)

        def start(self, rollout: Rollout, request: StartAnalysis) -> None:
            calls.append("start")
            verdicts.start(rollout, request)

        def stop(self, rollout: Rollout, name: str) -> None:
            calls.append("stop")
            verdicts.stop(rollout, name)

    writes: list[RolloutStatus] = []
    write = cluster.write_status

    def counted(rollout: Rollout, status: RolloutStatus) -> None:
        writes.append(status)
        write(rollout, status)

    cluster.write_status = counted  # type: ignore[method-assign]
    sim.ports.verdicts = Recording()
    sim.t += 120  # two windows due: the run's evidence, and so the Rollout's status, change
    plan = cycle(sim.rollout, sim.ports, sim.now)
    assert calls == ["tick", "observe"]
    assert writes == [plan.status]

    settled = sim.rollout.model_copy(update={"status": plan.status})
    plan = cycle(settled, sim.ports, sim.now)  # same instant: nothing new to say
    assert plan.status == settled.status
    assert len(writes) == 1
