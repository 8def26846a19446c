"""One evidence record from the statistics to every reader: the e-process's Evidence is what the
AnalysisRun's status, the Rollout's status, ``sluice get``'s view and the simulator's timeline
carry, through their JSON wire forms, with the log e-value exact (no exp and log on the way)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from analysis.api import AnalysisRun, AnalysisRunStatus, ArmValues, parse_run
from analysis.judge import Tally
from analysis.run_loop import MeasurementRecord, MetricReport
from analysis.stats.evidence import Evidence, Outcome
from analysis.stats.histogram import HistogramEProcess
from analysis.stats.sequential import RateRatioEProcess
from rollouts.api.rollout import AnalysisRunRecord, Rollout
from rollouts.api.validation import parse_rollout
from rollouts.cli.render_text import score_text
from rollouts.cli.rollout_view import build_view
from rollouts.cli.simulate import load_rollout, load_templates
from rollouts.simulator.simulation import SimOptions, Simulation
from rollouts.simulator.timeline import TimelineRecorder
from rollouts.verdicts.evidence_status import metric_result, metric_summaries
from simulations.simulated_provider import SCENARIOS
from tests.support.rollouts import rollout_doc
from tests.unit.rollouts.cli.test_simulate_plot import CANARY


def overwhelming() -> Evidence:
    """Evidence so strong that its e-value is beyond any float: exp(log e) would be infinite."""
    proc = RateRatioEProcess(alpha=0.025)
    for _ in range(400):
        proc.update(500.0, 1000.0, 10.0, 1000.0)
    ev = proc.evidence()
    assert ev.log_e_value is not None and ev.log_e_value > 1000
    return ev


def wire(doc: Any) -> Any:
    """Through JSON, as the API server stores it and returns it."""
    return json.loads(json.dumps(doc))


def run_with(evidence: Evidence) -> AnalysisRun:
    report = MetricReport(
        name="error-rate",
        phase="Failed",
        tally=Tally().add("Successful"),  # type: ignore[arg-type]
        measurements=(
            MeasurementRecord(
                at=1_700_000_060.0,
                phase="Successful",
                values=ArmValues(
                    canary_events=500, canary_total=1000, baseline_events=10, baseline_total=1000
                ),
            ),
        ),
        evidence=evidence,
        message="metric 'error-rate' failed",
        dry_run=False,
    )
    doc = rollout_doc()
    run = parse_run(
        {
            "metadata": {
                "name": "web-bbb-step1",
                "namespace": "default",
                "labels": {"sluice.dev/rollout": doc["metadata"]["name"]},
            },
            "spec": {
                "rollout": doc["metadata"]["name"],
                "revision": "bbb",
                "kind": "step",
                "stepIndex": 1,
                "metrics": [
                    {
                        "name": "error-rate",
                        "kind": "counts",
                        "interval": "60s",
                        "provider": {
                            "prometheus": {
                                "canary": {"events": "a", "total": "b"},
                                "baseline": {"events": "c", "total": "d"},
                            }
                        },
                        "compare": {},
                    }
                ],
            },
        }
    )
    status = AnalysisRunStatus(phase="Failed", metrics=[metric_result(report)])
    return run.model_copy(update={"status": status})


def rollout_with(run: AnalysisRun) -> Rollout:
    doc = rollout_doc()
    doc["status"] = {
        "analysisRuns": [
            AnalysisRunRecord(
                name=run.metadata.name,
                kind="step",
                step_index=1,
                phase="Failed",
                metrics=list(metric_summaries(run)),
            ).wire()
        ]
    }
    return parse_rollout(doc)


def test_the_record_is_the_same_from_the_statistics_to_the_view() -> None:
    ev = overwhelming()
    run = parse_run(wire(run_with(ev).wire()))
    assert run.status is not None
    (result,) = run.status.metrics
    assert result.evidence == ev  # the AnalysisRun's status: the record itself
    assert result.evidence.log_e_value == ev.log_e_value  # exactly, not approximately

    rollout_doc_ = wire(rollout_with(run).wire())
    rollout = parse_rollout(rollout_doc_)
    assert rollout.status is not None
    (summary,) = rollout.status.analysis_runs[0].metrics
    assert summary.evidence == ev  # the Rollout's status: the same record
    stored = rollout_doc_["status"]["analysisRuns"][0]["metrics"][0]["evidence"]
    assert stored["logEValue"] == ev.log_e_value and stored["logThreshold"] == pytest.approx(
        math.log(40)
    )

    view = build_view(rollout_doc_, runs=[wire(run.wire())])
    (metric,) = view.runs[0].metrics
    assert metric.evidence == ev  # what `sluice get` renders from
    assert metric.trend == (pytest.approx(50.0),)  # (500/1000) / (10/1000), from typed values
    # only the renderer exponentiates, and it caps what a float cannot hold
    assert score_text(metric).startswith("e=1.01e+304 / 40")


def test_absent_numbers_stay_absent_and_the_interval_keeps_its_open_end() -> None:
    ev = Evidence(
        method="sequential-normal-mixture",
        outcome=Outcome.INSUFFICIENT,
        estimate=float("nan"),
        lower=0.0,
        upper=float("inf"),
        log_e_value=0.0,
        log_threshold=math.log(40),
    )
    out = ev.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert "estimate" not in out and "upper" not in out and out["lower"] == 0.0
    assert ev.interval == (0.0, math.inf) and not ev.crossed()
    assert Evidence.model_validate(wire(out)) == ev


def test_a_status_field_this_version_does_not_know_is_named() -> None:
    with pytest.raises(ValueError, match="eValue"):
        Evidence.model_validate({"method": "m", "outcome": "reject", "eValue": 3.0})


def test_histogram_edges_carry_their_cumulative_exceedance_counts() -> None:
    bounds = [0.1, 0.25, 0.5, math.inf]
    proc = HistogramEProcess(bounds, [0.25, 0.5])
    proc.update([[80.0, 95.0, 99.0, 100.0]], [[90.0, 99.0, 100.0, 100.0]])
    proc.update([[80.0, 95.0, 99.0, 100.0]], [[90.0, 99.0, 100.0, 100.0]])
    ev = proc.evidence()
    edges = {e.edge: e for e in ev.details.edges}
    assert ev.details.deciding_edge in edges
    # requests slower than 0.25 s: 5 of 100 canary and 1 of 100 baseline per window, twice
    slow = edges[0.25]
    assert (slow.canary_slow, slow.canary_requests) == (10.0, 200.0)
    assert (slow.baseline_slow, slow.baseline_requests) == (2.0, 200.0)
    assert Evidence.model_validate(wire(ev.model_dump(mode="json", by_alias=True))) == ev


def test_the_timeline_shows_the_rollout_status_record_and_names_the_abort_from_status() -> None:
    opts = SimOptions(
        scenario=SCENARIOS["error-regression"], templates=tuple(load_templates([CANARY]))
    )
    sim = Simulation(load_rollout(CANARY), opts)
    recorder = TimelineRecorder(sim, "error-regression")
    statuses: list[tuple[float, Evidence | None]] = []

    def keep(line: Any) -> None:
        recorder.on_line(line)
        if line.analysis is not None:
            for m in line.analysis.metrics:
                if m.name == "error-rate":
                    statuses.append((line.t, m.evidence))

    timeline = recorder.timeline(sim.run(keep))
    points = [(p.t, p.evidence) for p in timeline.metrics["error-rate"].evidence]
    assert points == statuses and points  # every tick, the very record status carried
    st = sim.rollout.status
    assert st is not None and st.abort is not None and st.abort.metric == "error-rate"
    (abort,) = [d for d in timeline.decisions if d.kind == "abort"]
    assert abort.metric == "error-rate" and abort.label == "aborted: error-rate failed"
    steps = [d for d in timeline.decisions if d.kind == "step"]
    assert [d.steps for d in steps] == [(1,)]  # setWeight done; the analysis step failed
    assert steps[0].label == "step 1 done"
    last = timeline.metrics["error-rate"].evidence[-1].evidence
    assert last is not None and last.crossed() and last.outcome is Outcome.REJECT


def test_runs_and_rollouts_recorded_before_the_typed_record_still_load() -> None:
    """An upgrade meets statuses the previous version wrote: the untyped evidence of a run (log
    e-value in ``statistic``, ``interval`` as a pair, snake_case details) and the Rollout's flat
    summary (the e-value and 1/alpha exponentiated). Neither may read as an invalid object."""
    ev = overwhelming().model_copy(update={"log_e_value": 7.5})
    legacy_run_evidence = {
        "method": ev.method,
        "outcome": ev.outcome.value,
        "events": ev.events,
        "rule": ev.rule,
        "estimate": ev.estimate,
        "interval": [ev.lower, None],
        "statistic": ev.log_e_value,
        "threshold": ev.log_threshold,
        "details": {"canary_events": 200000.0, "edge_0.25_log_e_value": 1.0, "error": 2.0},
    }
    old = Evidence.model_validate(legacy_run_evidence)
    assert (old.log_e_value, old.log_threshold) == (ev.log_e_value, ev.log_threshold)
    assert (old.lower, old.upper, old.statistic, old.threshold) == (ev.lower, None, None, None)
    assert old.details.canary_events == 200000.0 and old.details.errors == 2.0

    doc = rollout_doc()
    doc["status"] = {
        "analysisRuns": [
            {
                "name": "web-bbb-step1",
                "kind": "step",
                "stepIndex": 1,
                "phase": "Running",
                "metrics": [
                    {
                        "name": "error-rate",
                        "phase": "Running",
                        "method": "sequential-rate-ratio",
                        "outcome": "continue",
                        "estimate": 1.2,
                        "interval": [0.9, 1.6],
                        "eValue": 3.5,
                        "threshold": 40.0,
                        "events": 118,
                        "measurements": 4,
                    },
                    {"name": "p99", "phase": "Pending", "events": 0},
                ],
            }
        ]
    }
    st = parse_rollout(doc).status
    assert st is not None
    errors, p99 = st.analysis_runs[0].metrics
    assert errors.evidence is not None and errors.measurements == 4
    assert errors.evidence.e_value() == pytest.approx(3.5)
    assert errors.evidence.e_threshold() == pytest.approx(40.0)
    assert errors.evidence.interval == (0.9, 1.6) and errors.evidence.events == 118
    assert p99.evidence is None  # nothing judged yet: no record, not an empty one
