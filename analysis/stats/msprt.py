"""Saturation gauges (CPU per request, memory, queue depth): a normal-mixture SPRT.

Why only approximately valid: gauges are few, autocorrelated and not Gaussian; the mSPRT of
Johari, Pekelis & Walsh is exact only for i.i.d. normal observations with known variance. Batch
means of ``log(canary/baseline)`` are closer to that, and every verdict says it is approximate.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from analysis.stats.evidence import Evidence

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


class NormalMixtureSPRT:
    """One-sided mSPRT on ``y = log(canary/baseline)``: ``H0: mean(y) <= theta0`` (increase is bad).

    ``sigma`` is the standard deviation of one ``y``; ``None`` estimates it from the data so far.
    """

    def __init__(
        self,
        *,
        tau: float,
        theta0: float = 0.0,
        alpha: float = 0.05,
        batch: int = 1,
        sigma: float | None = None,
    ) -> None:
        raise NotImplementedError

    def update(self, canary_value: ArrayLike, baseline_value: ArrayLike) -> None:
        raise NotImplementedError

    @property
    def log_e_value(self) -> FloatArray:
        raise NotImplementedError

    @property
    def log_threshold(self) -> float:
        raise NotImplementedError

    @property
    def rejected(self) -> BoolArray:
        raise NotImplementedError

    @property
    def events(self) -> FloatArray:
        """Number of valid paired observations."""
        raise NotImplementedError

    @property
    def estimate(self) -> FloatArray:
        """Geometric-mean ratio canary/baseline."""
        raise NotImplementedError

    def confidence_interval(self) -> tuple[FloatArray, FloatArray]:
        """Always-valid interval on the ratio ``exp(mean y)`` (approximate, as the test)."""
        raise NotImplementedError

    def evidence(self, index: int = 0) -> Evidence:
        raise NotImplementedError

    def to_state(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Self:
        raise NotImplementedError
