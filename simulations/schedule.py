"""Weight schedules: how much traffic the canary gets, step by step.

A rollout's canary share changes at step boundaries (5% -> 25% -> 50%, or a single pod that gets
1% for the whole analysis). The benchmark needs the schedule in two forms: as a fixed timeline (for
judges that never promote early) and as per-step weights and maximum durations (for Sluice, which
may promote a step as soon as its evidence allows), so both live here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True)
class Step:
    """One step: the canary's share of requests and the step's (maximum) duration."""

    weight: float
    duration_s: float

    def __post_init__(self) -> None:
        if not 0.0 < self.weight < 1.0:
            raise ValueError(f"canary weight must be in (0, 1), got {self.weight}")
        if self.duration_s <= 0:
            raise ValueError(f"step duration must be positive, got {self.duration_s}")


@dataclass(frozen=True)
class WeightSchedule:
    """Steps of canary weight, like the ``setWeight``/``pause`` steps of a Rollout."""

    name: str
    steps: tuple[Step, ...]

    def __post_init__(self) -> None:
        if not self.steps:
            raise ValueError("a schedule needs at least one step")

    @classmethod
    def stepped(
        cls, weights: tuple[float, ...], step_s: float, name: str | None = None
    ) -> WeightSchedule:
        """Equal-length steps, e.g. ``stepped((0.05, 0.25, 0.5), 600)``."""
        label = name or "→".join(f"{w:.0%}" for w in weights)
        return cls(label, tuple(Step(w, step_s) for w in weights))

    @classmethod
    def one_pod(cls, replicas: int, duration_s: float) -> WeightSchedule:
        """One canary pod among ``replicas`` behind replica-ratio routing: weight 1/replicas."""
        return cls(f"1 pod of {replicas}", (Step(1.0 / replicas, duration_s),))

    @property
    def duration_s(self) -> float:
        return float(sum(s.duration_s for s in self.steps))

    def n_ticks(self, tick_s: float) -> int:
        return round(self.duration_s / tick_s)

    def step_start_ticks(self, tick_s: float) -> NDArray[np.int64]:
        """Index of the first tick of each step on the fixed timeline."""
        ends = np.cumsum([round(s.duration_s / tick_s) for s in self.steps])
        return np.concatenate([[0], ends[:-1]]).astype(np.int64)

    def step_index(self, tick_s: float) -> NDArray[np.int64]:
        """The step each tick of the fixed timeline belongs to."""
        counts = [round(s.duration_s / tick_s) for s in self.steps]
        return np.repeat(np.arange(len(self.steps)), counts).astype(np.int64)

    def weights(self, tick_s: float) -> NDArray[np.float64]:
        """Canary weight at each tick of the fixed timeline (each step at its full duration)."""
        w = np.array([s.weight for s in self.steps])
        return w[self.step_index(tick_s)]
