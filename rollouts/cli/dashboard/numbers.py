"""The numbers a metric's page shows, read once from its evidence record.

The record keeps sequential e-values in log space; a page shows them as e-values against 1/alpha,
and other methods' statistic against their bound. Reading them here, in one place, keeps the
templates, the sentences and the charts from each deciding how to read the record.
"""

from __future__ import annotations

from dataclasses import dataclass

from rollouts.cli.rollout_view import MetricView


@dataclass(frozen=True)
class MetricNumbers:
    method: str | None = None
    outcome: str | None = None
    """reject, accept, continue or insufficient; None before any evidence."""
    estimate: float | None = None
    lower: float | None = None
    upper: float | None = None
    """The interval's ends; None where open (unbounded so far)."""
    e_value: float | None = None
    """Sequential tests: exp(logEValue), capped where exp overflows (display only)."""
    threshold: float | None = None
    """Sequential tests: 1/alpha; other methods: the bound their statistic is compared with."""
    statistic: float | None = None
    events: int = 0

    @property
    def has_interval(self) -> bool:
        return self.lower is not None or self.upper is not None


def numbers(m: MetricView) -> MetricNumbers:
    ev = m.evidence
    if ev is None:
        return MetricNumbers()
    sequential = ev.log_e_value is not None or ev.log_threshold is not None
    return MetricNumbers(
        method=ev.method,
        outcome=str(ev.outcome),
        estimate=ev.estimate,
        lower=ev.lower,
        upper=ev.upper,
        e_value=ev.e_value(),
        threshold=ev.e_threshold() if sequential else ev.threshold,
        statistic=None if sequential else ev.statistic,
        events=ev.events,
    )
