"""Sequential sample-ratio check: is the canary getting the share of requests it was given?

Why: if the router, a retry storm or a crash-looping pod skews the split, comparisons of the two
arms describe different populations; the analysis should then be inconclusive (a person looks),
not abort or promote.

How: given an interval's ``N`` requests, the canary's count is ``Binomial(N, ρ_t)`` under the
configured share ``ρ_t``. The alternative shifts the log-odds by a constant ``δ``
(``logit p_t = logit ρ_t + δ``), mixed over a normal prior with sd ``2/sqrt(concentration)`` — the
log-odds spread of a symmetric ``Beta(k/2, k/2)``, so ``concentration`` keeps the meaning of Lindon
& Malek's ``k`` (larger expects smaller deviations). Unlike their closed-form Dirichlet-multinomial
Bayes factor this stays a test martingale when the configured share changes every interval, which
it does at every step. The same log-likelihood grid as the rate-ratio e-process carries it.
An interval whose configured share is not strictly between 0 and 1 says nothing and is skipped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from analysis.stats.count_eprocess import (
    MAX_COUNT,
    STATE_VERSION,
    LogLikelihoodGrid,
    as_batch,
    cell_widths,
    sinh_grid,
)
from analysis.stats.evidence import Evidence, EvidenceDetails, sequential_outcome

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

GRID_SIZE = 100


class SampleRatioCheck:
    """Anytime-valid test that the canary's share equals the configured share, interval by interval.

    ``concentration`` plays the role of Lindon & Malek's ``k``: larger means smaller deviations are
    expected under the alternative.
    """

    method = "sequential-sample-ratio"

    def __init__(
        self, *, alpha: float = 0.001, batch: int = 1, concentration: float = 100.0
    ) -> None:
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        if not (math.isfinite(concentration) and concentration > 0):
            raise ValueError(f"concentration must be positive, got {concentration}")
        self.alpha = float(alpha)
        self.batch = int(batch)
        self.concentration = float(concentration)
        delta = sinh_grid(GRID_SIZE)
        self._grid = LogLikelihoodGrid(delta, self.batch)
        sd = 2.0 / math.sqrt(self.concentration)
        w = np.exp(-0.5 * (delta / sd) ** 2) * cell_widths(delta)
        self._log_w = np.log(np.maximum(w / w.sum(), np.finfo(np.float64).tiny))
        self._log_e = np.zeros(self.batch)
        self._mismatch = np.zeros(self.batch, dtype=bool)
        self._canary = np.zeros(self.batch)
        self._total = np.zeros(self.batch)
        self._expected = np.zeros(self.batch)  # Σ ρ_t·N_t, for the request-weighted expected share

    def update(
        self, canary_requests: ArrayLike, baseline_requests: ArrayLike, expected_share: ArrayLike
    ) -> None:
        """Fold in one interval; ``expected_share`` is the configured canary share for it."""
        c = as_batch(canary_requests, self.batch, "canary_requests")
        b = as_batch(baseline_requests, self.batch, "baseline_requests")
        rho = as_batch(expected_share, self.batch, "expected_share")
        with np.errstate(invalid="ignore"):
            valid = (
                (c >= 0)
                & (b >= 0)
                & (c + b > 0)
                & (c <= MAX_COUNT)
                & (b <= MAX_COUNT)
                & (rho > 0)
                & (rho < 1)
            )
        c = np.where(valid, c, 0.0)
        n = np.where(valid, c + b, 0.0)
        rho = np.where(valid, rho, 0.5)
        self._grid.add(c, n, np.log(rho) - np.log1p(-rho))
        self._canary += c
        self._total += n
        self._expected += rho * n
        self._log_e = self._grid.log_mixture(self._log_w) - self._grid.loglik[:, GRID_SIZE]
        self._mismatch |= self._log_e >= self.log_threshold

    @property
    def log_e_value(self) -> FloatArray:
        return self._log_e.copy()

    @property
    def log_threshold(self) -> float:
        return -math.log(self.alpha)

    @property
    def mismatch(self) -> BoolArray:
        """Sticky per-run flag."""
        return self._mismatch.copy()

    @property
    def requests(self) -> FloatArray:
        return self._total.copy()

    def evidence(self, index: int = 0) -> Evidence:
        """Verdict of run ``index``: REJECT means "the split is not the configured one"."""
        total = float(self._total[index])
        lo, hi = self._grid.confidence_set(self._log_w, self.log_threshold)
        est = math.exp(float(self._grid.posterior_log_mean(self._log_w)[index]))
        observed = float(self._canary[index] / total) if total > 0 else None
        expected = float(self._expected[index] / total) if total > 0 else None
        return Evidence(
            method=self.method,
            outcome=sequential_outcome(
                rejected=bool(self._mismatch[index]), has_data=total > 0, within=False
            ),
            estimate=est if total > 0 else None,
            lower=lo[index],
            upper=hi[index],
            log_e_value=self._log_e[index],
            log_threshold=self.log_threshold,
            events=round(total),
            rule=(
                f"flag a sample-ratio mismatch (inconclusive) when e-value >= 1/alpha = "
                f"{1 / self.alpha:g} (H0: canary share of requests = configured share); "
                f"estimate and interval are the odds of the canary's share relative to configured"
            ),
            details=EvidenceDetails(
                observed_share=observed, expected_share=expected, alpha=self.alpha
            ),
        )

    def to_state(self) -> dict[str, Any]:
        if self.batch != 1:
            raise ValueError("to_state is for a single run (batch == 1)")
        return {
            "version": STATE_VERSION,
            "kind": "sample-ratio",
            "alpha": self.alpha,
            "concentration": self.concentration,
            "loglik": [float(v) for v in self._grid.loglik[0]],
            "canary": float(self._canary[0]),
            "total": float(self._total[0]),
            "expected": float(self._expected[0]),
            "mismatch": bool(self._mismatch[0]),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Self:
        if state.get("version") != STATE_VERSION or state.get("kind") != "sample-ratio":
            raise ValueError("not a sample-ratio state of a known version")
        chk = cls(alpha=float(state["alpha"]), concentration=float(state["concentration"]))
        ll = np.asarray(state["loglik"], dtype=np.float64)
        if ll.shape != chk._grid.loglik[0].shape or not np.all(np.isfinite(ll)):
            raise ValueError("sample-ratio state has a log-likelihood of the wrong shape")
        chk._grid.loglik[0] = ll
        chk._canary[0] = float(state["canary"])
        chk._total[0] = float(state["total"])
        chk._expected[0] = float(state["expected"])
        chk._log_e = chk._grid.log_mixture(chk._log_w) - chk._grid.loglik[:, GRID_SIZE]
        chk._mismatch[0] = bool(state["mismatch"])
        return chk
