"""What every judge on a fixed timeline provides, and the windowing they share."""

from __future__ import annotations

from typing import Protocol, Self

import numpy as np
from numpy.typing import NDArray

from simulations.traffic import Trace

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


class FixedJudge(Protocol):
    """A judge that looks at the data of a fixed schedule and may stop the rollout."""

    @property
    def name(self) -> str: ...

    def abort_ticks(self, trace: Trace) -> IntArray:
        """Per run, the tick whose end is when the judge stops the rollout, or -1."""
        ...


class TunableJudge(FixedJudge, Protocol):
    """A judge with one knob that trades false aborts for speed."""

    @property
    def parameter(self) -> str:
        """The knob's current setting, for the report."""
        ...

    def tuned(self, calibration: Trace, target: float) -> Self:
        """A copy whose false-abort rate on the A/A ``calibration`` runs is at most ``target``."""
        ...


def look_ticks(trace: Trace, every_s: float) -> IntArray:
    """Last tick of each look window (a look every ``every_s`` seconds)."""
    per = max(round(every_s / trace.model.tick_s), 1)
    return np.arange(per - 1, trace.ticks, per, dtype=np.int64)


def window_sums(x: FloatArray, per: int) -> FloatArray:
    """Sum of each run's non-missing values over consecutive windows of ``per`` ticks.

    A window with no scraped interval at all is NaN (no data), never zero, which is what a
    ``rate(x[1m])`` query over a window without samples returns.
    """
    runs, ticks = x.shape[:2]
    n = ticks // per
    w = x[:, : n * per].reshape((runs, n, per, *x.shape[2:]))
    total = np.nansum(w, axis=2)
    seen = (~np.isnan(w)).any(axis=2)
    return np.where(seen, total, np.nan)


def cumulative(x: FloatArray) -> FloatArray:
    """Running sums along the tick axis with missing intervals contributing nothing."""
    return np.cumsum(np.nan_to_num(x, nan=0.0), axis=1)
