"""Where analysis verdicts come from, as the engine sees them.

The engine only asks "start this analysis" and reads "what did it conclude". Two sources plug in
behind this port: :class:`~rollouts.verdicts.scripted.ScriptedVerdicts` (the simulator's scripted
outcomes and the engine tests) and :class:`~rollouts.verdicts.analysis_runs.AnalysisVerdicts`
(AnalysisRuns judged by real statistics).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from rollouts.api.rollout import Rollout
from rollouts.engine.plan import AnalysisObservation, StartAnalysis


class VerdictSource(Protocol):
    """``tick`` is the reconcile's first phase: it advances the Rollout's analyses (all writes
    and metric queries happen there). ``observe`` then reads their verdicts and writes nothing;
    ``start`` and ``stop`` carry out the engine's StartAnalysis and StopAnalysis."""

    @property
    def clock(self) -> Callable[[], float]:
        """The analysis clock: measurement windows, and the weight changes that cut them, are
        read on it."""
        ...

    def tick(self, rollout: Rollout) -> None: ...

    def observe(self, rollout: Rollout) -> dict[str, AnalysisObservation]: ...

    def start(self, rollout: Rollout, request: StartAnalysis) -> None: ...

    def stop(self, rollout: Rollout, name: str) -> None: ...
