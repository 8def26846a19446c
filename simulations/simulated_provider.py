"""Measurements from the traffic simulator, in exactly the shapes Prometheus gives.

Why: ``sluice simulate`` and the unit tests should drive the real AnalysisRun loop (schedule,
judges, error budget, status) without a Prometheus; only the provider differs. The simulator
(:mod:`simulations.traffic`) produces one interval's counter increments per arm at a time, so this
provider generates ticks lazily up to the end of each requested window, reading the canary weight
as the rollout sets it (a callable), and sums the ticks inside the window as ``increase()`` would.

Shapes per kind, as the Prometheus provider returns them:

- ``counts``: ``Counts(errors, requests)`` of the arm (``canary`` or ``baseline``/stable);
- ``histogram``: ``Buckets`` with the simulator's ``le`` bounds plus ``+Inf``, cumulative;
- ``gauge``: ``Value`` = the arm's mean saturation over the window;
- ``value``/``gauge`` on the ``absolute`` arm (a threshold's single ``query``): the simulator cannot
  evaluate PromQL, so it reads a few words of the query: ``histogram_quantile(q, ...)`` gives the
  canary's q-quantile latency (seconds, interpolated in its bucket as Prometheus does),
  ``success`` the canary's success ratio, ``error`` or a 5xx status-code selector
  (``code=~"5.."``) its error ratio, ``saturation``/``cpu``/
  ``memory`` its saturation; any other query is a :class:`ProviderError` naming it.

An arm with no requests in the window (no canary yet, a scrape gap on every tick) is
:class:`NoData`, never zero.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from analysis.providers.port import (
    Arm,
    Buckets,
    Counts,
    Measured,
    NoData,
    ProviderError,
    Queries,
    Value,
)
from simulations.traffic import Effect, Nuisances, Simulator, TrafficModel

__all__ = ["SCENARIOS", "SimulatedProvider", "load_scenario", "scenario"]

_HISTORY_S = 6 * 3600.0  # ticks kept for windows reaching back (a controller catching up)


@dataclass(frozen=True)
class Scenario:
    """A named traffic model and the seed that makes its counts reproducible."""

    name: str
    model: TrafficModel
    seed: int = 1


SCENARIOS: dict[str, Scenario] = {
    "healthy": Scenario("healthy", TrafficModel(total_rps=400.0, base_error_rate=0.01)),
    "error-regression": Scenario(
        "error-regression",
        TrafficModel(total_rps=400.0, base_error_rate=0.01, effect=Effect("errors ×5", 5.0)),
    ),
    "latency-regression": Scenario(
        "latency-regression",
        TrafficModel(
            total_rps=400.0,
            base_error_rate=0.01,
            effect=Effect("latency +50%", latency_scale=1.5),
        ),
    ),
    "low-traffic": Scenario("low-traffic", TrafficModel(total_rps=0.05, base_error_rate=0.01)),
}
"""The scenarios ``sluice simulate --scenario`` offers by name."""


def scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(
            f"unknown scenario {name!r}; choose one of {', '.join(SCENARIOS)} or a scenario file"
        ) from None


_MODEL_KEYS = {
    "totalRps": "total_rps",
    "baseErrorRate": "base_error_rate",
    "tickSeconds": "tick_s",
    "sloSeconds": "slo_s",
    "saturationLevel": "saturation_level",
    "saturationNoise": "saturation_noise",
}
_EFFECT_KEYS = {f.name: f.name for f in fields(Effect)} | {
    "errorRatio": "error_ratio",
    "latencyScale": "latency_scale",
    "tailFraction": "tail_fraction",
    "tailAddSeconds": "tail_add_s",
    "saturationRatio": "saturation_ratio",
    "onsetSeconds": "onset_s",
}
_NUISANCE_KEYS = {
    "diurnalAmplitude": "diurnal_amplitude",
    "incidentProbability": "incident_prob",
    "podSpread": "pod_spread",
    "coldStartSeconds": "cold_start_s",
    "scrapeGapProbability": "scrape_gap_prob",
    "counterResetProbability": "counter_reset_prob",
}


def _pick(doc: Mapping[str, Any], keys: Mapping[str, str], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in doc.items():
        if k not in keys:
            raise ValueError(f"{where}.{k}: not a known field (known: {', '.join(sorted(keys))})")
        if k != "name" and (isinstance(v, bool) or not isinstance(v, int | float)):
            raise ValueError(f"{where}.{k}: must be a number")
        out[keys[k]] = float(v) if k != "name" else str(v)
    return out


def parse_scenario(doc: Mapping[str, Any], name: str = "file") -> Scenario:
    """A scenario from YAML: ``{name, seed, totalRps, baseErrorRate, effect: {errorRatio,
    latencyScale, ...}, nuisances: {podSpread, ...}}``; errors name the offending field."""
    doc = dict(doc)
    label = str(doc.pop("name", name))
    seed = doc.pop("seed", 1)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError("seed: must be an integer")
    effect = doc.pop("effect", None) or {}
    nuisances = doc.pop("nuisances", None) or {}
    if not isinstance(effect, Mapping) or not isinstance(nuisances, Mapping):
        raise ValueError("effect and nuisances must be mappings")
    kwargs = _pick(doc, _MODEL_KEYS, "scenario")
    model = TrafficModel(
        **kwargs,
        effect=Effect(**_pick(effect, _EFFECT_KEYS, "effect")),
        nuisances=Nuisances(**_pick(nuisances, _NUISANCE_KEYS, "nuisances")),
    )
    return Scenario(label, model, seed)


def load_scenario(path: Path) -> Scenario:
    """A scenario file (one YAML mapping, see :func:`parse_scenario`)."""
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ValueError(f"{path}: {e}") from None
    if not isinstance(doc, Mapping):
        raise ValueError(f"{path}: a scenario file is one YAML mapping")
    try:
        return parse_scenario(doc, path.stem)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: {e}") from None


@dataclass(frozen=True)
class _Tick:
    t_end: float
    requests: tuple[float, float]  # canary, baseline
    errors: tuple[float, float]
    buckets: tuple[np.ndarray[Any, np.dtype[np.float64]], np.ndarray[Any, np.dtype[np.float64]]]
    saturation: tuple[float, float]


_QUANTILE = re.compile(r"histogram_quantile\s*\(\s*([0-9.]+)")
_SERVER_ERRORS = re.compile(r"""code\s*=~\s*["']5""")
"""A selector of 5xx answers (``code=~"5.."``, ``response_code=~"5.*"``): an error ratio."""


class SimulatedProvider:
    """A :class:`analysis.providers.port.MetricProvider` backed by the traffic simulator.

    ``weight`` returns the canary's share of traffic in percent (the Rollout's current weight);
    ``origin`` is the time (same clock as ``start``/``end``) at which the simulated traffic begins.
    ``pods`` (canary pods, baseline pods) makes counts queries with a ``pod_label`` come back per
    pod, as ``sum by (pod)`` does: each window's counts of an arm are split over its pods, requests
    evenly, errors in proportion to requests times a pod effect ``exp(u)``, ``u ~ N(0,
    pod_spread²)`` drawn once per pod. The arms' totals stay the scenario's.
    """

    def __init__(
        self,
        scenario: Scenario,
        weight: Callable[[], float],
        *,
        origin: float = 0.0,
        pods: tuple[int, int] | None = None,
        pod_spread: float = 0.0,
    ) -> None:
        if pods is not None and min(pods) < 1:
            raise ValueError(f"pods must be at least one per arm, got {pods}")
        self.pods = pods
        self._pod_rng = np.random.default_rng(scenario.seed + 1)
        self._pod_effect = np.exp(
            self._pod_rng.normal(0.0, pod_spread, 0 if pods is None else sum(pods))
        )
        self.scenario = scenario
        self.model = scenario.model
        self.weight = weight
        self.origin = origin
        horizon = 24 * 3600.0
        self._sim = Simulator(self.model, 1, np.random.default_rng(scenario.seed), horizon)
        self._ticks: deque[_Tick] = deque()
        self.bounds = (*self.model.bounds, math.inf)

    @property
    def now(self) -> float:
        """The end of the last generated tick, on the caller's clock."""
        return self.origin + self._sim.t_end

    def advance(self, until: float) -> None:
        """Generate traffic up to ``until`` at the current weight (tick by tick)."""
        while self.now + self.model.tick_s <= until + 1e-9:
            w = min(max(self.weight() / 100.0, 0.0), 1.0)
            tick = self._sim.tick(w)
            c, b = tick.canary, tick.baseline
            self._ticks.append(
                _Tick(
                    self.origin + tick.t_end,
                    (float(c.requests[0]), float(b.requests[0])),
                    (float(c.errors[0]), float(b.errors[0])),
                    (c.buckets[0], b.buckets[0]),
                    (float(c.saturation[0]), float(b.saturation[0])),
                )
            )
            while self._ticks and self._ticks[0].t_end < self.now - _HISTORY_S:
                self._ticks.popleft()

    def _window(self, start: float, end: float) -> list[_Tick]:
        self.advance(end)
        return [t for t in self._ticks if start < t.t_end <= end + 1e-9]

    def measure(self, kind: str, arm: Arm, queries: Queries, start: float, end: float) -> Measured:
        if end <= start:
            raise ProviderError(f"empty window [{start:g}, {end:g}]")
        ticks = self._window(start, end)
        if arm == "absolute":
            return self._absolute(queries, ticks)
        i = 0 if arm == "canary" else 1
        valid = [t for t in ticks if not math.isnan(t.requests[i])]
        requests = sum(t.requests[i] for t in valid)
        if requests <= 0:
            raise NoData(f"no {arm} requests between {_clock(start)} and {_clock(end)}")
        if kind == "counts":
            events = sum(t.errors[i] for t in valid)
            if queries.pod_label and self.pods is not None:
                return self._per_pod(i, events, requests)
            return Counts(events=events, total=requests)
        if kind == "histogram":
            total = np.sum([t.buckets[i] for t in valid], axis=0)
            return Buckets(self.bounds, tuple(float(x) for x in total))
        if kind in ("gauge", "value"):
            return Value(float(np.mean([t.saturation[i] for t in valid])))
        raise ProviderError(f"unknown metric kind {kind!r}")

    def _per_pod(self, arm: int, events: float, requests: float) -> Counts:
        assert self.pods is not None
        n = self.pods[arm]
        effect = self._pod_effect[: self.pods[0]] if arm == 0 else self._pod_effect[self.pods[0] :]
        req = self._pod_rng.multinomial(round(requests), np.full(n, 1.0 / n)).astype(float)
        weights = req * effect
        share = weights / weights.sum() if weights.sum() > 0 else np.full(n, 1.0 / n)
        err = self._pod_rng.multinomial(round(events), share).astype(float)
        prefix = "canary" if arm == 0 else "stable"
        rows = tuple((f"{prefix}-{j}", float(err[j]), float(req[j])) for j in range(n))
        return Counts(float(err.sum()), float(req.sum()), rows)

    def _absolute(self, queries: Queries, ticks: list[_Tick]) -> Value:
        query = queries.value or ""
        valid = [t for t in ticks if not math.isnan(t.requests[0])]
        requests = sum(t.requests[0] for t in valid)
        if requests <= 0:
            raise NoData(f"no canary requests in the window of {query!r}")
        errors = sum(t.errors[0] for t in valid)
        q = _QUANTILE.search(query)
        if q is not None:
            cumulative = np.sum([t.buckets[0] for t in valid], axis=0)
            return Value(_quantile(float(q.group(1)), self.bounds, cumulative))
        text = query.lower()
        if "success" in text:
            return Value(1.0 - errors / requests)
        if "error" in text or _SERVER_ERRORS.search(text):
            return Value(errors / requests)
        if any(w in text for w in ("saturation", "cpu", "memory")):
            return Value(float(np.mean([t.saturation[0] for t in valid])))
        raise ProviderError(
            f"the simulator cannot evaluate {query!r}: it understands histogram_quantile(q, ...), "
            "and queries naming success, error or saturation/cpu/memory"
        )


def _clock(t: float) -> str:
    """A window's edge as a person reads it (UTC time of day), not 1.76723e+09."""
    return datetime.fromtimestamp(t, UTC).strftime("%H:%M:%S UTC")


def _quantile(q: float, bounds: tuple[float, ...], cumulative: np.ndarray[Any, Any]) -> float:
    """Prometheus's ``histogram_quantile``: linear interpolation inside the bucket."""
    if not 0.0 <= q <= 1.0:
        raise ProviderError(f"histogram_quantile: q must be in [0, 1], got {q}")
    total = float(cumulative[-1])
    rank = q * total
    k = int(np.searchsorted(cumulative, rank))
    k = min(k, len(bounds) - 1)
    if math.isinf(bounds[k]):
        return float(bounds[-2])
    lo = 0.0 if k == 0 else bounds[k - 1]
    below = 0.0 if k == 0 else float(cumulative[k - 1])
    inside = float(cumulative[k]) - below
    frac = 0.0 if inside <= 0 else (rank - below) / inside
    return float(lo + (bounds[k] - lo) * frac)
