"""The conditional count e-process: canary versus baseline event rates, anytime-valid.

Why conditional: given how many events ``s_t`` happened in an interval across both arms, the
number ``x_t`` that came from the canary is ``Binomial(s_t, θ_t(r))`` with
``θ_t(r) = n_c·r / (n_c·r + n_b)``; every nuisance shared by both arms (traffic level, diurnal
drift, an incident hitting both) cancels, and a changing canary weight only changes ``θ_t``.

One grid carries everything. The cumulative log-likelihood ``ℓ(r)`` is kept on a fixed grid of
``log r`` values that contains ``log r0`` exactly and is fine near it and coarse far away. From it:

* the test of ``H0: r <= r0`` is the mixture likelihood ratio over the grid points above ``r0``
  weighted by a (discretised) half-normal prior on ``log r - log r0`` with scale ``prior_scale``.
  A discrete prior is still a prior, so Ville's inequality applies exactly; monotone likelihood
  ratio makes it a supermartingale under every ``r <= r0``;
* the confidence sequence is ``{r : log M(r) < log(1/alpha)}`` with
  ``M(r) = Σ_k w_k exp(ℓ_k - ℓ(r))`` and ``w`` a normal prior on ``log r`` centred on 1
  (sd ``prior_scale``). ``M(r*)`` is a martingale under the true ``r*`` whatever ``r*`` is, so the
  set covers ``r*`` at all times with probability ``>= 1 - alpha``. ``ℓ`` is concave in ``log r``
  (the binomial is logistic in ``log r``), so the set is an interval; it is known on the grid
  only, so the reported ends are the grid neighbours just outside it (0 and inf past the grid's
  ends), which keeps the coverage guarantee.

Events may be fractional (PromQL ``increase()`` extrapolates); they are used as they come.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from analysis.stats.evidence import Evidence

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


class RateRatioEProcess:
    """Anytime-valid test of ``H0: canary rate <= tolerance x baseline rate``, over a batch of runs.

    Inputs to :meth:`update` are one interval's increments, arrays of shape ``(batch,)`` (scalars
    when ``batch == 1``). A run whose interval has a NaN, a negative increment (a counter reset that
    slipped through) or no traffic on either arm skips that interval: missing is never zero.
    """

    def __init__(
        self,
        *,
        tolerance: float = 1.2,
        alpha: float = 0.05,
        batch: int = 1,
        prior_scale: float = 0.5,
        grid_size: int = 100,
    ) -> None:
        raise NotImplementedError

    def update(
        self,
        canary_events: ArrayLike,
        canary_total: ArrayLike,
        baseline_events: ArrayLike,
        baseline_total: ArrayLike,
    ) -> None:
        """Fold in one interval's increments (events, and requests or other exposure)."""
        raise NotImplementedError

    @property
    def log_e_value(self) -> FloatArray:
        """``log E_T`` per run; finite, 0 before any informative interval."""
        raise NotImplementedError

    @property
    def log_threshold(self) -> float:
        """``log(1/alpha)``: the e-value bound that rejects."""
        raise NotImplementedError

    @property
    def rejected(self) -> BoolArray:
        """Sticky: once ``E >= 1/alpha`` a run stays rejected (Ville bounds the first crossing)."""
        raise NotImplementedError

    @property
    def events(self) -> FloatArray:
        """Events seen in valid intervals, both arms."""
        raise NotImplementedError

    @property
    def canary_events(self) -> FloatArray:
        raise NotImplementedError

    @property
    def baseline_events(self) -> FloatArray:
        raise NotImplementedError

    @property
    def canary_exposure(self) -> FloatArray:
        raise NotImplementedError

    @property
    def baseline_exposure(self) -> FloatArray:
        raise NotImplementedError

    @property
    def estimate(self) -> FloatArray:
        """Rate ratio estimate; NaN before any event."""
        raise NotImplementedError

    def confidence_interval(self) -> tuple[FloatArray, FloatArray]:
        """Time-uniform ``(lo, hi)`` on the rate ratio at level ``1 - alpha``."""
        raise NotImplementedError

    def evidence(self, index: int = 0) -> Evidence:
        """Verdict of run ``index`` (method ``sequential-rate-ratio``)."""
        raise NotImplementedError

    def to_state(self) -> dict[str, Any]:
        """JSON-able state (batch == 1) for Kubernetes status, to resume after a restart."""
        raise NotImplementedError

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Self:
        raise NotImplementedError
