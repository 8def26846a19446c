"""A run whose status can no longer be written is reported, not waited on forever (issue 13).

The simulator's wiring (real AnalysisVerdicts over the memory store), with a store whose status
writes start failing mid-analysis, as an API server answering 500 would make them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import kubernetes
import pytest
import urllib3

from analysis.api import AnalysisRun
from analysis.store.memory import MemoryAnalysisStore
from analysis.store.retry import transient
from rollouts.api.validation import parse_rollout
from rollouts.simulator.simulation import SimOptions, Simulation, next_revision
from rollouts.verdicts.analysis_runs import AnalysisVerdicts
from simulations.simulated_provider import SCENARIOS
from tests.support.rollouts import rollout_doc
from tests.unit.rollouts.verdicts.test_analysis_runs import STEPS, counts_template


class Failing:
    """The simulation's store, whose status writes fail with ``error()`` while ``broken``."""

    def __init__(self, inner: MemoryAnalysisStore, error: Callable[[], Exception]) -> None:
        self.inner = inner
        self.broken = False
        self.failed = 0
        self.error = error

    def update_run_status(self, run: AnalysisRun) -> AnalysisRun:
        if self.broken:
            self.failed += 1
            raise self.error()
        return self.inner.update_run_status(run)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def unavailable() -> Exception:
    return kubernetes.client.ApiException(status=503, reason="Service Unavailable")


def analysing(error: Callable[[], Exception]) -> tuple[Simulation, Failing]:
    """A Rollout whose first step's run is Running, its store about to fail with ``error``."""
    doc = rollout_doc(steps=STEPS, deadline=3600)
    opts = SimOptions(scenario=SCENARIOS["healthy"], templates=(counts_template(count=40),))
    sim = Simulation(parse_rollout(doc), opts)
    assert sim.settle() == "Healthy"
    sim.rollout = next_revision(sim.rollout, opts)
    verdicts = sim.verdicts
    assert isinstance(verdicts, AnalysisVerdicts) and sim.store is not None
    store = Failing(sim.store, error)
    verdicts.store = store  # type: ignore[assignment]
    while (
        (st := sim.rollout.status) is None
        or not st.analysis_runs
        or (st.analysis_runs[0].phase != "Running")
    ):
        sim.t += 5
        sim.step()
    return sim, store


def test_a_run_whose_status_stops_being_written_ends_in_error_and_aborts() -> None:
    sim, store = analysing(lambda: RuntimeError("(500) status write failed"))
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


def test_an_api_outage_longer_than_a_minute_does_not_abort_a_healthy_canary() -> None:
    """Every status write answers 503 for 150 s (five 30 s windows, past the 60 s that a run
    failing for other reasons gets): the run falls behind, then catches up once the API is back,
    and the canary goes on to promote."""
    sim, store = analysing(unavailable)
    store.broken = True
    broke_at = sim.t
    while sim.t - broke_at < 150:
        sim.t += 5
        sim.step()
        st = sim.rollout.status
        assert st is not None and st.phase != "Degraded", st.abort
    assert store.failed > 0
    store.broken = False
    assert sim.settle() == "Healthy"
    st = sim.rollout.status
    assert st is not None and st.abort is None
    assert all(r.phase == "Successful" for r in st.analysis_runs), st.analysis_runs


def test_transient_failures_that_never_end_still_abort_after_five_minutes() -> None:
    sim, store = analysing(unavailable)
    store.broken = True
    broke_at = sim.t
    while (st := sim.rollout.status) is not None and st.phase != "Degraded":
        assert sim.t - broke_at < 900, "never reported"
        sim.t += 5
        sim.step()
    # 30 s windows: more than 300 s behind is 11 windows; reported within about twelve
    assert 300 < sim.t - broke_at <= 12 * 30 + 10
    assert st is not None and st.abort is not None
    assert "made no progress" in st.abort.message and "(503)" in st.abort.message
    assert st.weights.canary == 0


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (kubernetes.client.ApiException(status=503), True),
        (kubernetes.client.ApiException(status=500), True),
        (kubernetes.client.ApiException(status=429), True),
        (kubernetes.client.ApiException(status=409), True),
        (urllib3.exceptions.ReadTimeoutError(None, "/", "read timed out"), True),  # type: ignore[arg-type]
        (ConnectionRefusedError(), True),
        (TimeoutError(), True),
        (kubernetes.client.ApiException(status=422), False),
        (kubernetes.client.ApiException(status=403), False),
        (RuntimeError("(500) status write failed"), False),
        (ValueError("bad"), False),
    ],
)
def test_which_failures_are_the_api_servers_passing_trouble(
    error: Exception, expected: bool
) -> None:
    assert transient(error) is expected
