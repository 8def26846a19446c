"""A run whose status can no longer be written is reported, not waited on forever (issue 13).

The simulator's wiring (real AnalysisVerdicts over the memory store), with a store whose status
writes start failing mid-analysis, as an API server answering 500 would make them."""

from __future__ import annotations

from typing import Any

from analysis.api import AnalysisRun
from analysis.store.memory import MemoryAnalysisStore
from rollouts.api.validation import parse_rollout
from rollouts.simulator.simulation import SimOptions, Simulation, next_revision
from rollouts.verdicts.analysis_runs import AnalysisVerdicts
from simulations.simulated_provider import SCENARIOS
from tests.support.rollouts import rollout_doc
from tests.unit.rollouts.verdicts.test_analysis_runs import STEPS, counts_template


class Failing:
    """The simulation's store, whose status writes fail while ``broken``."""

    def __init__(self, inner: MemoryAnalysisStore) -> None:
        self.inner = inner
        self.broken = False
        self.failed = 0

    def update_run_status(self, run: AnalysisRun) -> AnalysisRun:
        if self.broken:
            self.failed += 1
            raise RuntimeError("(500) status write failed")
        return self.inner.update_run_status(run)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_run_whose_status_stops_being_written_ends_in_error_and_aborts() -> None:
    doc = rollout_doc(steps=STEPS, deadline=3600)
    opts = SimOptions(scenario=SCENARIOS["healthy"], templates=(counts_template(count=40),))
    sim = Simulation(parse_rollout(doc), opts)
    assert sim.settle() == "Healthy"
    sim.rollout = next_revision(sim.rollout, opts)
    verdicts = sim.verdicts
    assert isinstance(verdicts, AnalysisVerdicts) and sim.store is not None
    store = Failing(sim.store)
    verdicts.store = store  # type: ignore[assignment]

    def run_phase() -> str | None:
        st = sim.rollout.status
        return st.analysis_runs[0].phase if st is not None and st.analysis_runs else None

    while run_phase() != "Running":
        sim.t += 5
        sim.step()
    store.broken = True
    broke_at = sim.t
    while (
        sim.rollout.status is not None
        and sim.rollout.status.phase != "Degraded"
        and sim.t - broke_at < 600
    ):
        sim.t += 5
        sim.step()  # never raises: one run's trouble does not fail the reconcile
    st = sim.rollout.status
    assert st is not None and st.phase == "Degraded", st
    assert store.failed > 0
    # 30 s windows, more than 3 behind: reported within about four windows of breaking
    assert sim.t - broke_at <= 4 * 30 + 10
    assert st.abort is not None and st.abort.reason == "AnalysisFailed"
    assert "made no progress" in st.abort.message
    assert "measurement windows behind its schedule" in st.abort.message
    assert "status write failed" in st.abort.message
    assert st.weights.canary == 0
