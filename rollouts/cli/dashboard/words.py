"""The Rollout's state and its decisions in sentences an SRE reads at a glance.

Everything here works on the CLI's :class:`RolloutView` (the same numbers ``sluice get rollout``
prints), so the page and the terminal never disagree; only the wording is the dashboard's.
"""

from __future__ import annotations

import math

from rollouts.cli.dashboard.numbers import MetricNumbers, numbers
from rollouts.cli.render_text import num
from rollouts.cli.rollout_view import MetricView, RolloutView, RunView

PHASE_SYMBOLS = {
    "Healthy": "✓",
    "Progressing": "↻",
    "Paused": "‖",
    "Degraded": "✗",
}
"""Shown beside the phase's colour, so the colour is never the only signal."""

STEP_SYMBOLS = {"done": "✓", "current": "▶", "pending": "○"}

PAUSE_WORDS = {
    "CanaryPauseStep": "paused at a pause step of the rollout",
    "BlueGreenPause": "the preview waits for promotion",
    "PausedByUser": "paused by a person (a pause request)",
    "InconclusiveAnalysis": "analysis could not decide: a person must promote or abort",
    "WaitingForGate": "waiting for a gate URL to answer HTTP 200 (promote passes it)",
}

ABORT_WORDS = {
    "AnalysisFailed": "analysis found the new revision worse than the stable one",
    "AbortedByUser": "a person asked to abort",
    "ProgressDeadlineExceeded": "the new revision's pods were not ready within the progress deadline",
}


def phase_symbol(phase: str | None) -> str:
    return PHASE_SYMBOLS.get(phase or "", "?")


def in_flight(view: RolloutView) -> bool:
    return view.current_revision is not None and view.current_revision != view.stable_revision


def headline(view: RolloutView) -> str:
    """One sentence: where the rollout is and why."""
    if view.abort is not None:
        why = ABORT_WORDS.get(view.abort.reason, view.abort.reason or "it was aborted")
        return (
            f"Aborted: {why}. All traffic went back to the stable revision "
            f"{view.stable_revision or '?'}; the rollout stays here until a new revision or a retry."
        )
    if view.phase == "Paused" and view.pauses:
        why = "; ".join(PAUSE_WORDS.get(p.reason, p.reason) for p in view.pauses)
        person = " It waits for a person." if view.waits_for_person else ""
        return f"Paused: {why}.{person}"
    if view.phase == "Healthy" and not in_flight(view):
        passed = [m for r in view.runs for m in r.metrics if numbers(m).outcome == "accept"]
        because = (
            " Promoted after analysis showed it within tolerance: "
            + ", ".join(m.name for m in passed)
            + "."
            if passed
            else ""
        )
        return f"Healthy: revision {view.stable_revision or '?'} is stable and takes all traffic.{because}"
    if in_flight(view):
        return (
            f"Rolling out revision {view.current_revision} over {view.stable_revision or 'nothing'}: "
            f"{view.weight}% of traffic on the canary."
        )
    return f"{view.phase or 'Unknown'}: {view.message or 'the controller has not reported yet'}"


def _interval(n: MetricNumbers) -> str:
    lo, hi = n.lower, n.upper
    if lo is not None and hi is not None:
        return f" (confidence interval {num(lo)} to {num(hi)})"
    if lo is not None:  # an unbounded side (infinite in the statistics) is left out of status
        return f" (confidence interval: at least {num(lo)})"
    if hi is not None:
        return f" (confidence interval: at most {num(hi)})"
    return ""


def metric_words(m: MetricView) -> str:
    """Why this metric stands where it does, with its numbers."""
    n = numbers(m)
    estimate = (
        f"estimate {num(n.estimate)}{_interval(n)}" if n.estimate is not None else "no estimate yet"
    )
    counted = f"{n.events} events counted over {m.measurements} measurements"
    if n.e_value is not None and n.threshold is not None:
        score = f"e-value {num(n.e_value)} against the threshold {num(n.threshold)}"
        if n.outcome == "reject":
            return (
                f"Failed: the evidence against the canary ({score}) crossed the line, so the "
                f"canary is worse than tolerated; {estimate}; {counted}. The test is "
                f"anytime-valid: looking at every window keeps the false-alarm rate under "
                f"1/{num(n.threshold)}."
            )
        if n.outcome == "accept":
            return f"Passed: the canary is within tolerance; {estimate}; {score}; {counted}."
        return f"Still gathering evidence: {score}; {estimate}; {counted}."
    if n.statistic is not None:
        verdict = {"reject": "Failed", "accept": "Passed"}.get(n.outcome or "", "Measuring")
        bound = f" against {num(n.threshold)}" if n.threshold is not None else ""
        return f"{verdict}: statistic {num(n.statistic)}{bound}; {estimate}; {counted}."
    return f"{m.phase}: {m.message or 'no measurement yet'}"


def run_words(run: RunView) -> str:
    where = "background" if run.step_index is None else f"step {run.step_index + 1}"
    return f"{run.kind or 'analysis'} run at {where}: {run.phase}" + (
        f", {run.message}" if run.message else ""
    )


def finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None
