"""Where analysis verdicts come from, as the engine sees them.

The engine only asks "start this analysis" and reads "what did it conclude". Two sources plug in
behind this port: :class:`~rollouts.verdicts.scripted.ScriptedVerdicts` (the simulator's scripted
outcomes and the engine tests) and :class:`~rollouts.verdicts.analysis_runs.AnalysisVerdicts`
(AnalysisRuns judged by real statistics).
"""

from __future__ import annotations

from typing import Protocol

from rollouts.api.rollout import Rollout
from rollouts.engine.plan import AnalysisObservation, StartAnalysis


class VerdictSource(Protocol):
    def start(self, rollout: Rollout, request: StartAnalysis) -> None: ...

    def stop(self, rollout: Rollout, name: str) -> None: ...

    def observe(self, rollout: Rollout) -> dict[str, AnalysisObservation]: ...
