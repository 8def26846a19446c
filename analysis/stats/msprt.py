"""Saturation gauges (CPU per request, memory, queue depth): a normal-mixture SPRT.

Why only approximately valid: gauges are few, autocorrelated and not Gaussian; the mSPRT of
Johari, Pekelis & Walsh is exact only for i.i.d. normal observations with known variance. Batch
means of ``y = log(canary/baseline)`` are closer to that, and every verdict says it is approximate.

Each ``y`` is already a paired difference, so ``sigma`` is the standard deviation of one ``y``
(ANALYSIS.md's ``2σ²`` is this variance when each arm has variance ``σ²``). The test is one-sided:
the mixing prior is half-normal (scale ``tau``) on ``mean(y) - theta0 > 0``, whose closed form is

    log Λ_n = log 2 + ½·log(σ²/(σ²+nτ²)) + τ²S²/(2σ²(σ²+nτ²)) + log Φ(τS/(σ·sqrt(σ²+nτ²)))

with ``S = Σ(y - theta0)``; each component is a supermartingale under every mean ``<= theta0``.
The interval is the two-sided normal-mixture confidence sequence on ``mean(y)``, shown as a ratio.
With ``sigma=None`` the standard deviation is the running sample one (at least
``MIN_OBSERVATIONS`` values, floored at ``MIN_SIGMA``): plugged in, not integrated over.
Gauge values that are zero, negative or missing have no log ratio and skip the interval.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import log_ndtr

from analysis.stats.count_eprocess import STATE_VERSION, as_batch
from analysis.stats.evidence import Evidence, EvidenceDetails, sequential_outcome

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

MIN_OBSERVATIONS = 10  # with 5, A/A false alarms reached 7% at alpha = 5% when tau = sigma/2
MIN_SIGMA = 1e-3


class NormalMixtureSPRT:
    """One-sided mSPRT on ``y = log(canary/baseline)``: ``H0: mean(y) <= theta0`` (increase is bad).

    ``sigma`` is the standard deviation of one ``y``; ``None`` estimates it from the data so far.
    """

    method = "sequential-normal-mixture"

    def __init__(
        self,
        *,
        tau: float,
        theta0: float = 0.0,
        alpha: float = 0.05,
        batch: int = 1,
        sigma: float | None = None,
    ) -> None:
        if not (math.isfinite(tau) and tau > 0):
            raise ValueError(f"tau must be positive, got {tau}")
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        if sigma is not None and not (math.isfinite(sigma) and sigma > 0):
            raise ValueError(f"sigma must be positive, got {sigma}")
        if not math.isfinite(theta0):
            raise ValueError("theta0 must be finite")
        self.tau = float(tau)
        self.theta0 = float(theta0)
        self.alpha = float(alpha)
        self.batch = int(batch)
        self.sigma = None if sigma is None else float(sigma)
        self._n = np.zeros(self.batch)
        self._mean = np.zeros(self.batch)
        self._m2 = np.zeros(self.batch)
        self._log_e = np.zeros(self.batch)
        self._rejected = np.zeros(self.batch, dtype=bool)

    def update(self, canary_value: ArrayLike, baseline_value: ArrayLike) -> None:
        """Fold in one interval's (batch-mean) gauge values."""
        c = as_batch(canary_value, self.batch, "canary_value")
        b = as_batch(baseline_value, self.batch, "baseline_value")
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            y = np.log(c) - np.log(b)
        valid = np.isfinite(y) & (c > 0) & (b > 0)
        y = np.where(valid, y, 0.0)
        n = self._n + valid
        delta = y - self._mean
        self._mean = np.where(valid, self._mean + delta / np.maximum(n, 1), self._mean)
        self._m2 = np.where(valid, self._m2 + delta * (y - self._mean), self._m2)
        self._n = n
        self._refresh()

    def _variance(self) -> tuple[FloatArray, BoolArray]:
        """Variance of one ``y`` and whether it is usable yet."""
        if self.sigma is not None:
            return np.full(self.batch, self.sigma**2), self._n > 0
        var = self._m2 / np.maximum(self._n - 1, 1)
        return np.maximum(var, MIN_SIGMA**2), self._n >= MIN_OBSERVATIONS

    def _refresh(self) -> None:
        v, ready = self._variance()
        n, t2 = self._n, self.tau**2
        s = n * (self._mean - self.theta0)
        denom = v + n * t2
        log_e = (
            math.log(2.0)
            + 0.5 * np.log(v / denom)
            + t2 * s**2 / (2 * v * denom)
            + log_ndtr(self.tau * s / np.sqrt(v * denom))
        )
        self._log_e = np.where(ready, log_e, 0.0)
        self._rejected |= ready & (self._log_e >= self.log_threshold)

    @property
    def log_e_value(self) -> FloatArray:
        return self._log_e.copy()

    @property
    def log_threshold(self) -> float:
        return -math.log(self.alpha)

    @property
    def rejected(self) -> BoolArray:
        return self._rejected.copy()

    @property
    def events(self) -> FloatArray:
        """Number of valid paired observations."""
        return self._n.copy()

    @property
    def ready(self) -> BoolArray:
        """Enough observations to judge (any with a given sigma, MIN_OBSERVATIONS otherwise)."""
        return self._variance()[1]

    @property
    def estimate(self) -> FloatArray:
        """Geometric-mean ratio canary/baseline; NaN before any observation."""
        return np.where(self._n > 0, np.exp(self._mean), np.nan)

    def confidence_interval(self) -> tuple[FloatArray, FloatArray]:
        """Always-valid interval on the ratio ``exp(mean y)`` (approximate, as the test)."""
        v, ready = self._variance()
        n, t2 = np.maximum(self._n, 1), self.tau**2
        denom = v + n * t2
        half = np.sqrt(2 * v * denom / (n**2 * t2) * (self.log_threshold + 0.5 * np.log(denom / v)))
        lo = np.where(ready, np.exp(self._mean - half), 0.0)
        hi = np.where(ready, np.exp(self._mean + half), np.inf)
        return lo, hi

    @property
    def tolerance(self) -> float:
        return math.exp(self.theta0)

    @property
    def within_tolerance(self) -> BoolArray:
        below = self.confidence_interval()[1] <= self.tolerance
        return np.asarray(self.ready & ~self._rejected & below)

    def evidence(self, index: int = 0) -> Evidence:
        lo, hi = self.confidence_interval()
        v, _ = self._variance()
        why = "normal mixture assumes independent Gaussian batch means" + (
            "" if self.sigma is not None else " and plugs in the sample standard deviation"
        )
        return Evidence(
            method=self.method,
            outcome=sequential_outcome(
                rejected=bool(self._rejected[index]),
                has_data=bool(self.ready[index]),
                within=bool(hi[index] <= self.tolerance),
            ),
            estimate=self.estimate[index],
            lower=lo[index],
            upper=hi[index],
            log_e_value=self._log_e[index],
            log_threshold=self.log_threshold,
            events=round(float(self._n[index])),
            rule=(
                f"abort when e-value >= 1/alpha = {1 / self.alpha:g} "
                f"(H0: canary/baseline geometric-mean ratio <= {self.tolerance:g}); "
                f"approximate: {why}"
            ),
            approximate=True,
            details=EvidenceDetails(
                sigma=math.sqrt(v[index]),
                tau=self.tau,
                observations=self._n[index],
                tolerance=self.tolerance,
                alpha=self.alpha,
            ),
        )

    def to_state(self) -> dict[str, Any]:
        if self.batch != 1:
            raise ValueError("to_state is for a single run (batch == 1)")
        return {
            "version": STATE_VERSION,
            "kind": "normal-mixture",
            "tau": self.tau,
            "theta0": self.theta0,
            "alpha": self.alpha,
            "sigma": self.sigma,
            "n": float(self._n[0]),
            "mean": float(self._mean[0]),
            "m2": float(self._m2[0]),
            "rejected": bool(self._rejected[0]),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Self:
        if state.get("version") != STATE_VERSION or state.get("kind") != "normal-mixture":
            raise ValueError("not a normal-mixture state of a known version")
        sigma = state.get("sigma")
        proc = cls(
            tau=float(state["tau"]),
            theta0=float(state["theta0"]),
            alpha=float(state["alpha"]),
            sigma=None if sigma is None else float(sigma),
        )
        proc._n[0] = float(state["n"])
        proc._mean[0] = float(state["mean"])
        proc._m2[0] = float(state["m2"])
        proc._refresh()
        proc._rejected[0] = bool(state["rejected"])
        return proc
