"""Scripted verdicts: each analysis ends as told, after a fixed time.

Why: the simulator's ``--analysis pass|fail|...`` and the engine tests exercise analysis steps end
to end without statistics or a metric source.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from rollouts.api.rollout import Rollout
from rollouts.engine.plan import AnalysisObservation, AnalysisPhase, StartAnalysis


@dataclass
class _Run:
    started: float
    kind: str
    templates: tuple[str, ...]
    stopped: bool = False


class ScriptedVerdicts:
    """Each analysis concludes ``after`` seconds with the phase scripted for its templates.

    ``outcomes`` maps a template name (or ``"*"``) to the phase its analyses end in; a run whose
    templates include a failing one fails, naming that template as the failing metric source.
    """

    def __init__(
        self,
        clock: Callable[[], float],
        outcomes: Mapping[str, AnalysisPhase] | None = None,
        after: float = 60.0,
    ) -> None:
        self.clock = clock
        self.outcomes = dict(outcomes or {"*": "Successful"})
        self.after = after
        self.runs: dict[str, _Run] = {}

    def start(self, rollout: Rollout, request: StartAnalysis) -> None:
        self.runs.setdefault(request.name, _Run(self.clock(), request.kind, request.templates))

    def stop(self, rollout: Rollout, name: str) -> None:
        if name in self.runs:
            self.runs[name].stopped = True

    def _outcome(self, templates: tuple[str, ...]) -> tuple[AnalysisPhase, str]:
        default = self.outcomes.get("*", "Successful")
        for rank in ("Failed", "Error", "Inconclusive"):
            for t in templates:
                if self.outcomes.get(t, default) == rank:
                    return rank, f"template {t}: scripted {rank.lower()} verdict"
        return "Successful", "scripted verdict: all metrics passed"

    def tick(self, rollout: Rollout) -> None:
        """Nothing to advance: a scripted run's verdict is a function of the clock."""

    def observe(self, rollout: Rollout) -> dict[str, AnalysisObservation]:
        now = self.clock()
        out: dict[str, AnalysisObservation] = {}
        for name, run in self.runs.items():
            if run.stopped:
                continue
            if now - run.started < self.after:
                out[name] = AnalysisObservation("Running")
            else:
                phase, message = self._outcome(run.templates)
                out[name] = AnalysisObservation(phase, message)
        return out
