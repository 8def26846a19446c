"""The one shape every statistical judgement reports in.

Status, events, the CLI and the benchmark all show *why* a decision was taken; they can only do so
uniformly if every method (sequential, Mann-Whitney, thresholds) speaks the same vocabulary.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class Outcome(StrEnum):
    """What a method concludes about one metric at one look.

    ``INSUFFICIENT`` is deliberately separate from ``CONTINUE``: "not enough valid data to say
    anything" (no traffic, NaN, gaps) must never be mistaken for "data says keep going", and it must
    never promote.
    """

    REJECT = "reject"  # canary worse than tolerated: abort
    ACCEPT = "accept"  # canary shown to be within tolerance: may promote
    CONTINUE = "continue"  # evidence so far decides nothing; keep looking
    INSUFFICIENT = "insufficient"  # not enough valid data to judge at all


@dataclass(frozen=True)
class Evidence:
    """Everything a person needs to audit one verdict.

    ``statistic`` is the method's own number (log e-value, Mann-Whitney U, observed value) and
    ``threshold`` the bound it was compared with, so ``rule`` can be read against them.
    """

    method: str
    outcome: Outcome
    estimate: float | None = None
    interval: tuple[float, float] | None = None
    statistic: float | None = None
    threshold: float | None = None
    events: int = 0
    rule: str = ""
    approximate: bool = False
    details: Mapping[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """A JSON-safe form for Kubernetes status and events (no NaN/inf, which JSON lacks)."""

        def clean(x: float | None) -> float | None:
            if x is None or x != x or x in (float("inf"), float("-inf")):
                return None
            return float(x)

        out: dict[str, object] = {
            "method": self.method,
            "outcome": self.outcome.value,
            "events": int(self.events),
            "rule": self.rule,
        }
        if clean(self.estimate) is not None:
            out["estimate"] = clean(self.estimate)
        if self.interval is not None:
            out["interval"] = [clean(self.interval[0]), clean(self.interval[1])]
        if clean(self.statistic) is not None:
            out["statistic"] = clean(self.statistic)
        if clean(self.threshold) is not None:
            out["threshold"] = clean(self.threshold)
        if self.approximate:
            out["approximate"] = True
        if self.details:
            out["details"] = {k: clean(v) for k, v in self.details.items()}
        return out
