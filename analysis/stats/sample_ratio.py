"""Sequential sample-ratio guard: is the canary losing most of the requests it was routed?

Why gross loss only: the count tests condition on each interval's observed request counts, so a
canary share that differs from the asked weight does not bias them. A mesh that routes 4% when 5%
is asked, or a counter reset that makes one interval's ``increase()`` lose requests, is ordinary
infrastructure noise and must never pause a rollout. What must pause it is a canary that reports
far fewer requests than it was routed, or none (a crash-looping pod, a broken scrape, requests
served by someone else): its metrics then describe something other than the traffic it took.

How: with ``N`` requests in an interval and the asked share ``ρ``, the canary's count is
``Binomial(N, p(q))`` with ``p(q) = q·ρ/(q·ρ + 1 - ρ)``, ``q`` the canary's share relative to the
asked one (in odds, like the rate ratio of the count tests). The null is ``q >= LOSS_RATIO`` (the
canary gets at least half of what it was asked to get, in odds); mesh imprecision of ±20% is
``q`` of 0.8-1.2, well inside it. Each interval contributes the likelihood ratio of a few
fixed losses (:data:`LOSS_ALTERNATIVES`) against ``q = LOSS_RATIO``, averaged, and **capped** at
:data:`INTERVAL_CAP`: by monotone likelihood ratio each factor has expectation ``<= 1`` under every
``q`` of the null, and capping only lowers it, so their product is a test supermartingale. The cap
is what makes one bad interval (a counter reset) unable to pause anything: it takes several lost
intervals. To catch a loss that starts late, after many healthy intervals have driven the product
towards zero, the e-process mixes over the interval the loss starts at, with weight
``1/(s(s+1))`` for start ``s`` (an e-detector; still a supermartingale, so Ville's inequality
bounds a false pause by ``alpha`` over the whole rollout). An interval whose asked share is not
strictly between 0 and 1, or with no requests, says nothing and is skipped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from analysis.stats.count_eprocess import MAX_COUNT, STATE_VERSION, as_batch
from analysis.stats.evidence import Evidence, EvidenceDetails, sequential_outcome

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

LOSS_RATIO = 0.5
"""The guard fires only when the canary is shown to get less than this fraction of its asked share
(in odds): 2.5% or less of the requests when 5% was asked."""
LOSS_ALTERNATIVES: tuple[float, ...] = (0.3, 0.1, 0.01)
"""The losses each interval's likelihood ratio is taken against (share ratios, averaged)."""
INTERVAL_CAP = 30.0
"""Most one interval can multiply the evidence by: with ``alpha`` 0.001 and the start-time mixture,
no one or two lost intervals can pause a rollout; a canary with no requests pauses after 3-6."""


class SampleRatioCheck:
    """Anytime-valid guard against gross loss of the canary's share of requests, per run."""

    method = "sequential-sample-ratio"

    def __init__(
        self, *, alpha: float = 0.001, batch: int = 1, loss_ratio: float = LOSS_RATIO
    ) -> None:
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {alpha}")
        if not 0.0 < loss_ratio < 1.0:
            raise ValueError(f"loss_ratio must be in (0, 1), got {loss_ratio}")
        self.alpha = float(alpha)
        self.batch = int(batch)
        self.loss_ratio = float(loss_ratio)
        self._alts = np.array([q for q in LOSS_ALTERNATIVES if q < self.loss_ratio] or [0.01])
        self._log_a = np.full(self.batch, -np.inf)  # log Σ_s π_s Π_{u>=s} L_u
        self._starts = np.zeros(self.batch)  # valid intervals so far (start times used)
        self._log_e = np.zeros(self.batch)
        self._mismatch = np.zeros(self.batch, dtype=bool)
        self._canary = np.zeros(self.batch)
        self._total = np.zeros(self.batch)
        self._expected = np.zeros(self.batch)  # Σ ρ_t·N_t, for the request-weighted expected share

    def _log_factor(self, c: FloatArray, n: FloatArray, rho: FloatArray) -> FloatArray:
        def p(q: float | FloatArray) -> FloatArray:
            return np.asarray(q * rho / (q * rho + 1.0 - rho), dtype=np.float64)

        p0 = p(self.loss_ratio)
        parts = []
        for q in self._alts:
            p1 = p(float(q))
            parts.append(c * (np.log(p1) - np.log(p0)) + (n - c) * (np.log1p(-p1) - np.log1p(-p0)))
        stacked = np.stack(parts)
        top = stacked.max(axis=0)
        mix = top + np.log(np.exp(stacked - top).mean(axis=0))
        return np.asarray(np.minimum(mix, math.log(INTERVAL_CAP)), dtype=np.float64)

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
        start = self._starts + 1.0
        log_pi = -np.log(start) - np.log(start + 1.0)
        log_l = self._log_factor(c, n, rho)
        new_a = np.logaddexp(self._log_a, log_pi) + log_l
        self._log_a = np.where(valid, new_a, self._log_a)
        self._starts += valid
        self._canary += c
        self._total += n
        self._expected += rho * n
        # Σ_{s <= t} π_s = 1 - 1/(t+1): the components not started yet still stand at 1.
        self._log_e = np.logaddexp(self._log_a, -np.log(self._starts + 1.0))
        self._mismatch |= self._log_e >= self.log_threshold

    @property
    def log_e_value(self) -> FloatArray:
        return self._log_e.copy()

    @property
    def log_threshold(self) -> float:
        return -math.log(self.alpha)

    @property
    def mismatch(self) -> BoolArray:
        """Sticky per-run flag: the canary was shown to lose most of its share."""
        return self._mismatch.copy()

    @property
    def requests(self) -> FloatArray:
        return self._total.copy()

    def evidence(self, index: int = 0) -> Evidence:
        """Verdict of run ``index``: REJECT means "the canary lost most of its share"."""
        total = float(self._total[index])
        observed = float(self._canary[index] / total) if total > 0 else None
        expected = float(self._expected[index] / total) if total > 0 else None
        ratio = observed / expected if observed is not None and expected else None
        return Evidence(
            method=self.method,
            outcome=sequential_outcome(
                rejected=bool(self._mismatch[index]), has_data=total > 0, within=False
            ),
            estimate=ratio,
            log_e_value=self._log_e[index],
            log_threshold=self.log_threshold,
            events=round(total),
            rule=(
                f"pause (inconclusive) when e-value >= 1/alpha = {1 / self.alpha:g} against "
                f"H0: the canary gets at least {self.loss_ratio:g} of its configured share of "
                f"requests (in odds); estimate is observed share / configured share. Mesh "
                f"imprecision and counter resets do not fire it: each interval's factor is "
                f"capped at {INTERVAL_CAP:g}"
            ),
            details=EvidenceDetails(
                observed_share=observed,
                expected_share=expected,
                alpha=self.alpha,
                loss_ratio=self.loss_ratio,
            ),
        )

    def to_state(self) -> dict[str, Any]:
        if self.batch != 1:
            raise ValueError("to_state is for a single run (batch == 1)")
        log_a = float(self._log_a[0])
        return {
            "version": STATE_VERSION,
            "kind": "sample-ratio",
            "alpha": self.alpha,
            "loss_ratio": self.loss_ratio,
            "log_a": log_a if math.isfinite(log_a) else None,
            "starts": float(self._starts[0]),
            "canary": float(self._canary[0]),
            "total": float(self._total[0]),
            "expected": float(self._expected[0]),
            "mismatch": bool(self._mismatch[0]),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Self:
        """Resume; a state of the earlier two-sided check (a ``loglik`` grid) keeps its totals and
        its flag, and the loss e-process starts afresh (its evidence was about another null)."""
        if state.get("version") != STATE_VERSION or state.get("kind") != "sample-ratio":
            raise ValueError("not a sample-ratio state of a known version")
        chk = cls(
            alpha=float(state["alpha"]), loss_ratio=float(state.get("loss_ratio", LOSS_RATIO))
        )
        log_a = state.get("log_a")
        chk._log_a[0] = -np.inf if log_a is None else float(log_a)
        chk._starts[0] = float(state.get("starts", 0.0))
        chk._canary[0] = float(state["canary"])
        chk._total[0] = float(state["total"])
        chk._expected[0] = float(state["expected"])
        chk._log_e = np.logaddexp(chk._log_a, -np.log(chk._starts + 1.0))
        chk._mismatch[0] = bool(state["mismatch"])
        return chk
