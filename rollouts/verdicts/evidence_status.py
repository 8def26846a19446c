"""An AnalysisRun's per-metric results as the run's status and the Rollout's status show them.

Kept apart from the verdict source so that how evidence is recorded and summarised has one owner.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from analysis.api import AnalysisRun, MetricResult
from analysis.run_loop import MetricReport
from rollouts.api.rollout import AnalysisMetricStatus


def _epoch(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def metric_result(r: MetricReport) -> MetricResult:
    return MetricResult.model_validate(
        {
            "name": r.name,
            "phase": r.phase,
            "measurements": [
                {
                    "at": _epoch(m.at),
                    "phase": m.phase,
                    "value": m.value,
                    "values": m.values,
                    "message": m.message,
                }
                for m in r.measurements
            ],
            "successful": r.tally.successful,
            "failed": r.tally.failed,
            "inconclusive": r.tally.inconclusive,
            "errors": r.tally.errors,
            "consecutiveErrors": r.tally.consecutive_errors,
            "evidence": None if r.evidence is None else r.evidence.to_dict(),
        }
    )


def metric_summaries(run: AnalysisRun) -> tuple[AnalysisMetricStatus, ...]:
    """The compact per-metric evidence the Rollout's status shows."""
    status = run.status
    if status is None:
        return ()
    dry = {m.name for m in run.spec.metrics if m.dry_run}
    out = []
    for m in status.metrics:
        ev = m.evidence or {}
        method = str(ev.get("method", "")) or None
        stat = ev.get("statistic")
        thr = ev.get("threshold")
        sequential = method is not None and method.startswith("sequential")
        interval = ev.get("interval")
        out.append(
            AnalysisMetricStatus.model_validate(
                {
                    "name": m.name,
                    "phase": m.phase,
                    "method": method,
                    "outcome": ev.get("outcome"),
                    "estimate": ev.get("estimate"),
                    "interval": interval,
                    "eValue": _exp(stat) if sequential else None,
                    "statistic": None if sequential else stat,
                    "threshold": _exp(thr) if sequential else thr,
                    "events": int(ev.get("events", 0) or 0),
                    "measurements": m.successful + m.failed + m.inconclusive + m.errors,
                    "dryRun": m.name in dry,
                    "message": _metric_message(m, run),
                }
            )
        )
    return tuple(out)


def _metric_message(m: MetricResult, run: AnalysisRun) -> str:
    last = m.measurements[-1] if m.measurements else None
    if last is not None and last.phase in ("Error", "Inconclusive") and last.message:
        return last.message
    msg = run.status.message if run.status is not None else ""
    return msg if f"'{m.name}'" in msg else ""


def _exp(x: Any) -> float | None:
    if x is None:
        return None
    return float(math.exp(min(float(x), 700.0)))
