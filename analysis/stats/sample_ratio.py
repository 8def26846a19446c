"""Sequential sample-ratio check: is the canary getting the share of requests it was given?

Why: if the router, a retry storm or a crash-looping pod skews the split, comparisons of the two
arms describe different populations; the analysis should then be inconclusive (a person looks),
not abort or promote.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from analysis.stats.evidence import Evidence

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


class SampleRatioCheck:
    """Anytime-valid test that the canary's share equals the configured share, interval by interval.

    ``concentration`` plays the role of Lindon & Malek's ``k``: larger means smaller deviations are
    expected under the alternative.
    """

    def __init__(
        self, *, alpha: float = 0.001, batch: int = 1, concentration: float = 100.0
    ) -> None:
        raise NotImplementedError

    def update(
        self, canary_requests: ArrayLike, baseline_requests: ArrayLike, expected_share: ArrayLike
    ) -> None:
        raise NotImplementedError

    @property
    def log_e_value(self) -> FloatArray:
        raise NotImplementedError

    @property
    def mismatch(self) -> BoolArray:
        """Sticky per-run flag."""
        raise NotImplementedError

    def evidence(self, index: int = 0) -> Evidence:
        raise NotImplementedError

    def to_state(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Self:
        raise NotImplementedError
