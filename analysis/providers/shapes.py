"""Turning a Prometheus query result into a measurement shape, or saying exactly why not.

Kept apart from the HTTP client so every odd result Prometheus can return (an empty vector,
``NaN`` from ``0/0``, two series where one was expected, a histogram without its ``+Inf`` bucket)
is handled by plain functions that unit tests drive directly, without a server.

The rule throughout: *nothing to count* is :class:`NoData` (insufficient evidence, never zero);
*something that cannot be this metric's shape* is :class:`ProviderError`, with a message naming
what was wrong, because it lands verbatim in the AnalysisRun's measurement.

``prometheus-api-client``'s ``custom_query`` returns only ``data.result``, not its
``resultType``, so the type is recovered from the shape: a list of objects with ``value`` is a
vector, with ``values`` a matrix, and a bare ``[timestamp, "text"]`` pair is a scalar (or a string,
if the text is not a number).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from analysis.providers.port import Buckets, Counts, NoData, ProviderError

__all__ = ["MONOTONE_SLACK", "to_buckets", "to_counts", "to_number"]

MONOTONE_SLACK = 1e-6
"""Relative slack for cumulative bucket counts that decrease with ``le``.

``increase()`` extrapolates each bucket series on its own, so floating-point noise can make a
higher bucket a hair smaller than a lower one; that is repaired (running maximum). A decrease larger
than this share of the total is not noise: the query mixes series (e.g. ``sum`` without ``by (le)``
over pods with different buckets) and the result is refused.
"""


def _labels(series: Mapping[str, Any]) -> str:
    metric = series.get("metric") or {}
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(metric.items()))
    return "{" + inner + "}"


def _float(text: Any, what: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        raise ProviderError(f"{what}: not a number: {text!r}") from None


def _finite(value: float, what: str) -> float:
    if math.isnan(value):
        raise NoData(f"{what}: NaN (no requests in the window?)")
    if math.isinf(value):
        raise NoData(f"{what}: {value} (division by zero: no requests in the window?)")
    return value


def _vector(result: Any, what: str) -> list[Mapping[str, Any]] | None:
    """The result as an instant vector, ``None`` for a scalar, :class:`ProviderError` otherwise."""
    if isinstance(result, list) and len(result) == 2 and not isinstance(result[0], Mapping):
        return None  # [timestamp, "value"]: a scalar (or string) result
    if not isinstance(result, list) or not all(isinstance(s, Mapping) for s in result):
        raise ProviderError(f"{what}: unexpected result shape: {str(result)[:200]}")
    if any("values" in s for s in result):
        raise ProviderError(
            f"{what}: returned a range vector (matrix); an analysis query must return an instant "
            "vector or a scalar, e.g. wrap the range selector in increase() or rate()"
        )
    if not all("value" in s for s in result):
        raise ProviderError(f"{what}: unexpected result shape: {str(result)[:200]}")
    return list(result)


def to_number(result: Any, what: str) -> float:
    """One number from a result expected to hold at most one series.

    Empty vector → :class:`NoData` (the series is missing, which is not zero). ``NaN``/``±Inf`` →
    :class:`NoData` (a ratio over no requests). Two or more series → :class:`ProviderError`
    naming their label sets: picking one, or summing them, would silently judge the wrong thing.
    """
    vector = _vector(result, what)
    if vector is None:
        text = result[1]
        try:
            value = float(text)
        except (TypeError, ValueError):
            raise ProviderError(f"{what}: returned a string, not a number: {text!r}") from None
        return _finite(value, what)
    if not vector:
        raise NoData(f"{what}: empty result (no matching series in the window)")
    if len(vector) > 1:
        shown = ", ".join(_labels(s) for s in vector[:5])
        more = f" and {len(vector) - 5} more" if len(vector) > 5 else ""
        raise ProviderError(
            f"{what}: expected one series, got {len(vector)}: {shown}{more}; "
            "aggregate them (e.g. sum(...)) or narrow the selector"
        )
    return _finite(_float(vector[0]["value"][1], what), what)


def to_buckets(result: Any, what: str) -> Buckets:
    """Cumulative histogram buckets from a result with one series per ``le``.

    Refuses (:class:`ProviderError`) a series without ``le``, an unparsable or repeated ``le``
    (the query did not aggregate ``by (le)``), a missing ``+Inf`` bucket (no total), a negative
    count, or counts that decrease with ``le`` beyond :data:`MONOTONE_SLACK`. An empty result or a
    ``NaN`` bucket is :class:`NoData`.
    """
    vector = _vector(result, what)
    if vector is None:
        raise ProviderError(
            f"{what}: returned a scalar; a histogram query must return one series per le"
        )
    if not vector:
        raise NoData(f"{what}: empty result (no matching bucket series in the window)")
    pairs: dict[float, float] = {}
    for series in vector:
        metric = series.get("metric") or {}
        if "le" not in metric:
            raise ProviderError(
                f"{what}: series {_labels(series)} has no le label; "
                "aggregate the _bucket series with sum by (le) (...)"
            )
        bound = _float(metric["le"], f"{what}: le of {_labels(series)}")
        if math.isnan(bound):
            raise ProviderError(f"{what}: le of {_labels(series)} is NaN")
        if bound in pairs:
            same = [
                _labels(s)
                for s in vector
                if _float((s.get("metric") or {}).get("le"), what) == bound
            ]
            raise ProviderError(
                f"{what}: more than one series for le={metric['le']}: {', '.join(same[:5])}; "
                "aggregate with sum by (le) (...)"
            )
        count = _float(series["value"][1], f"{what}: bucket le={metric['le']}")
        if math.isnan(count):
            raise NoData(f"{what}: bucket le={metric['le']} is NaN")
        if count < 0:
            raise ProviderError(
                f"{what}: bucket le={metric['le']} has a negative count {count}; "
                "use increase() on the _bucket counters"
            )
        if math.isinf(count):
            raise ProviderError(f"{what}: bucket le={metric['le']} is infinite")
        pairs[bound] = count
    if math.inf not in pairs:
        raise ProviderError(
            f'{what}: no le="+Inf" bucket (got le={sorted(pairs)}); the +Inf bucket is the '
            "total, without it the histogram cannot be judged"
        )
    bounds = tuple(sorted(pairs))
    counts = [pairs[b] for b in bounds]
    total = counts[-1]
    if total == 0 and not any(counts):
        raise NoData(f"{what}: no observations in the window (every bucket is 0)")
    slack = MONOTONE_SLACK * max(total, 1.0)
    for i in range(1, len(counts)):
        if counts[i] < counts[i - 1]:
            if counts[i - 1] - counts[i] > slack:
                raise ProviderError(
                    f"{what}: cumulative counts decrease from le={bounds[i - 1]} "
                    f"({counts[i - 1]}) to le={bounds[i]} ({counts[i]}); the buckets are not one "
                    "histogram (mixed bucket layouts or a missing sum by (le))"
                )
            counts[i] = counts[i - 1]
    return Buckets(bounds=bounds, counts=tuple(counts))


def to_numbers_by(result: Any, label: str, what: str) -> dict[str, float]:
    """One number per value of ``label`` (per-pod series, ``sum by (pod)``).

    One series without the label is the aggregate (returned under ``""``); several series must
    each carry the label with distinct values, or the result is a :class:`ProviderError` (a sum
    over the wrong grouping would judge the wrong thing). Empty → :class:`NoData`. A pod's ``NaN``
    is left out (that pod had no traffic), all ``NaN`` is :class:`NoData`.
    """
    vector = _vector(result, what)
    if vector is None or len(vector) <= 1:
        if vector is not None and vector and label in vector[0].get("metric", {}):
            name = str(vector[0]["metric"][label])
            return {name: _finite(_float(vector[0]["value"][1], what), what)}
        return {"": to_number(result, what)}
    out: dict[str, float] = {}
    for series in vector:
        name = series.get("metric", {}).get(label)
        if name is None or name in out:
            raise ProviderError(
                f"{what}: expected one series per {label!r}, got {_labels(series)}; "
                f"aggregate with sum by ({label}) (...)"
            )
        value = _float(series["value"][1], what)
        if math.isfinite(value):
            out[str(name)] = value
    if not out:
        raise NoData(f"{what}: every per-{label} series is NaN")
    return out


def to_counts_by(events: dict[str, float], total: dict[str, float], what: str) -> Counts:
    """Per-pod counts, checked pod by pod like :func:`to_counts`. A pod with requests but no
    events series has no events (the error counter of a pod that never failed may not exist);
    a pod with events but no requests is a :class:`ProviderError`."""
    if set(total) == {""} or set(events) == {""}:
        return to_counts(sum(events.values()), sum(total.values()), what)
    stray = sorted(set(events) - set(total))
    if stray:
        raise ProviderError(f"{what}: events for pods without a total: {', '.join(stray[:5])}")
    rows = []
    for pod in sorted(total):
        c = (
            to_counts(events.get(pod, 0.0), total[pod], f"{what} (pod {pod})")
            if total[pod]
            else None
        )
        rows.append((pod, 0.0 if c is None else c.events, total[pod]))
    agg = to_counts(sum(r[1] for r in rows), sum(r[2] for r in rows), what)
    return Counts(agg.events, agg.total, tuple(rows))


def to_counts(events: float, total: float, what: str) -> Counts:
    """Checked counts for one window: never negative, never more events than requests.

    Either would mean the queries do not measure what ``counts`` needs (a ``delta()`` on a counter,
    or an events selector that is not a subset of the total's), and a wrong count would move the
    e-process in a direction nothing justifies. Events above the total by float noise only (the
    same ``increase()`` extrapolation summed in a different order) are clamped to the total.

    A window without requests (``total == 0``) is :class:`NoData`: the series exist but say
    nothing about the canary, and counting it as a clean window would let a canary that serves no
    traffic look healthy (the simulated provider treats it the same way).
    """
    if events < 0 or total < 0:
        raise ProviderError(
            f"{what}: negative count (events={events}, total={total}); "
            "use increase() on counters, not delta()"
        )
    if events > total:
        if events - total > MONOTONE_SLACK * max(total, 1.0):
            raise ProviderError(
                f"{what}: more events than total ({events} > {total}); the events query must "
                "select a subset of the total query's series"
            )
        events = total
    if total == 0:
        raise NoData(f"{what}: no requests in the window (total is 0)")
    return Counts(events=events, total=total)
