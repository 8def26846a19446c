"""The metric provider port: what an analysis asks of a metrics backend, and the shapes it gets back.

Analysis runs (``analysis.run_loop``) depend on this module only, never on a concrete backend, so the
same run logic is driven by a real Prometheus in production and integration tests, and by the
simulator in unit tests and ``sluice simulate``. The port is deliberately small: one call per
metric, per arm, per measurement window.

Two failure modes are kept apart on purpose, because the statistics treat them differently:

- :class:`NoData`: the backend answered, but there is nothing to count (no series, an empty
  vector, ``NaN`` from ``0/0``). That is *insufficient evidence*: the measurement adds nothing to
  the e-process and can never promote. It is never turned into zero, because a canary that
  serves no traffic would otherwise look perfectly healthy.
- :class:`ProviderError`: the backend could not answer, or answered something the metric's kind
  cannot mean (server down, timeout, HTTP or PromQL error, two series where one was expected,
  negative or non-cumulative counts). That is a measurement ``Error``: it counts toward
  ``consecutiveErrorLimit`` and never toward a promotion.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = [
    "Arm",
    "Buckets",
    "Counts",
    "Measured",
    "MetricProvider",
    "NoData",
    "Pending",
    "ProviderError",
    "Queries",
    "Value",
]

Arm = Literal["canary", "baseline", "absolute"]
"""Which side of the comparison a query measures; ``absolute`` is a threshold check's single query."""


@dataclass(frozen=True)
class Counts:
    """Events out of a total over one window (errors out of requests), for the count e-processes.

    Counts are per window, not cumulative: the provider asks for ``increase(...[window])`` so each
    measurement is a fresh increment the sequential tests can add up. They are floats because
    ``increase()`` extrapolates to the window edges and returns fractional counts.
    """

    events: float
    total: float
    per_pod: tuple[tuple[str, float, float], ...] | None = None
    """``(pod, events, total)`` per pod, sorted by pod, when the queries returned one series per
    pod (``sum by (pod)``) and the metric judges pods as the sampling unit; ``events`` and
    ``total`` are then their sums."""


@dataclass(frozen=True)
class Buckets:
    """One histogram's bucket counts over a window, Prometheus style.

    ``bounds`` are the ``le`` upper bounds in ascending order, the last one ``inf``; ``counts`` are
    cumulative (``counts[i]`` = observations ``<= bounds[i]``), so ``counts[-1]`` is the total.
    Keeping Prometheus's cumulative form avoids a lossy conversion at the edge; the histogram
    e-process takes exceedance counts directly from it.
    """

    bounds: tuple[float, ...]
    counts: tuple[float, ...]


@dataclass(frozen=True)
class Value:
    """A single number (a gauge, a ratio, a plain query result) for thresholds or Mann-Whitney."""

    value: float
    note: str = ""
    """What the measurement's message should say besides the number (a Job's last log lines)."""


Measured = Counts | Buckets | Value
"""What one measurement of one arm returns; the shape is fixed by the metric's ``kind``."""


class NoData(Exception):
    """The backend answered with nothing to count: an empty result, ``NaN``, a missing series.

    Surfaced as *insufficient evidence*, never as zero: zero errors out of zero requests is no
    evidence that a canary is healthy.
    """


class Pending(Exception):
    """The measurement of this window is under way (a Job still running): nothing is recorded,
    and the same window is measured again at the next tick. Only checks that take longer than a
    request (``provider.job``) raise it."""


class ProviderError(Exception):
    """The backend failed, or returned something that cannot be this metric's shape.

    Raised after bounded retries for transient causes (down, timeout, 5xx) and at once for
    permanent ones (bad PromQL, 4xx, more series than expected, negative counts). The message
    names the query and the cause, because it ends up in the AnalysisRun's measurement and is
    what an operator reads first.
    """


@dataclass(frozen=True)
class Queries:
    """The rendered queries for one arm; which fields are used depends on the metric's kind.

    ``counts`` uses ``events`` and ``total``; ``histogram`` uses ``buckets``; ``gauge`` and
    ``value`` use ``value``. Queries may still contain ``{{window}}``: templates leave it for the
    provider, which alone knows the measurement window.
    """

    events: str | None = None
    total: str | None = None
    buckets: str | None = None
    value: str | None = None
    pod_label: str | None = None
    """Counts only: the queries may return one series per value of this label (``pod``) instead
    of one series; set when the metric judges pods as the sampling unit."""


class MetricProvider(Protocol):
    """Fetches what one metric needs for one arm over the window ``[start, end]``.

    ``start`` and ``end`` are unix seconds. A provider evaluates at ``end`` over a window of
    ``end - start``, so consecutive measurements tile time without overlap and each window's counts
    feed the sequential tests exactly once. Implementations raise :class:`NoData` or
    :class:`ProviderError`, never return zeros in place of missing data, and never raise anything
    else for backend trouble.
    """

    def measure(
        self, kind: str, arm: Arm, queries: Queries, start: float, end: float
    ) -> Measured: ...


class Unavailable:
    """A provider that cannot be built (no address, a missing Secret) still answers: every
    measurement is a ``ProviderError`` naming the cause, so the run ends ``Error`` after its
    error limit with that message, never a crash and never a silent success."""

    def __init__(self, message: str) -> None:
        self.message = message

    def measure(self, kind: str, arm: Arm, queries: Queries, start: float, end: float) -> Measured:
        raise ProviderError(self.message)
