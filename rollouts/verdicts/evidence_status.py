"""An AnalysisRun's per-metric results as the run's status and the Rollout's status show them.

Kept apart from the verdict source so that how evidence is recorded and summarised has one owner.
The evidence record itself passes through unchanged: the statistics' :class:`Evidence` is what
both statuses carry.
"""

from __future__ import annotations

from datetime import UTC, datetime

from analysis.api import AnalysisRun, Measurement, MetricResult
from analysis.run_loop import MetricReport
from rollouts.api.rollout import AnalysisMetricStatus


def _epoch(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def metric_result(r: MetricReport) -> MetricResult:
    return MetricResult(
        name=r.name,
        phase=r.phase,
        measurements=[
            Measurement.model_validate(
                {
                    "at": _epoch(m.at),
                    "phase": m.phase,
                    "value": m.value,
                    "values": m.values,
                    "message": m.message,
                }
            )
            for m in r.measurements
        ],
        successful=r.tally.successful,
        failed=r.tally.failed,
        inconclusive=r.tally.inconclusive,
        errors=r.tally.errors,
        consecutive_errors=r.tally.consecutive_errors,
        evidence=r.evidence,
    )


def metric_summaries(run: AnalysisRun) -> tuple[AnalysisMetricStatus, ...]:
    """The compact per-metric evidence the Rollout's status shows."""
    status = run.status
    if status is None:
        return ()
    dry = {m.name for m in run.spec.metrics if m.dry_run}
    return tuple(
        AnalysisMetricStatus(
            name=m.name,
            phase=m.phase,
            evidence=m.evidence,
            measurements=m.successful + m.failed + m.inconclusive + m.errors,
            dry_run=m.name in dry,
            message=_metric_message(m, run),
        )
        for m in status.metrics
    )


def _metric_message(m: MetricResult, run: AnalysisRun) -> str:
    last = m.measurements[-1] if m.measurements else None
    if last is not None and last.phase in ("Error", "Inconclusive") and last.message:
        return last.message
    msg = run.status.message if run.status is not None else ""
    return msg if f"'{m.name}'" in msg else ""
