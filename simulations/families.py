"""Benchmark families: the real-fleet conditions of issue 12, each with A/A and regression cells.

Run ``python -m simulations.families --quick`` (a subset, a couple of minutes) or without
``--quick`` (every cell). Writes ``families[-full].md`` and ``.json`` to ``--out`` and rewrites
the generated table in ``docs/analysis.md`` (``--no-docs`` to leave it alone).

A *cell* is one condition of a family (say, two canary pods whose error rates spread with
σ = 0.5 at 2000 req/s); its *cases* are the canaries judged in it: the identical canary (A/A,
always first), canaries worse but within tolerance, and regressions. Sluice is the product's
default (:data:`DEFAULT_JUDGE`: the errors metric judges the canary's pods as the sampling unit
over aggregate series, the default spread 0.1) unless the cell says otherwise (the pod family
sends per-pod series). Per cell, Sluice runs on its own simulation; the oracle SPRT (told the true effect) and the Kayenta-style judge run on fixed
schedules, the latter also tuned on the cell's own A/A runs to Sluice's measured A/A false-abort
rate, so "×Kayenta" compares speed at equal safety, nuisances included. Why cells, not the classic
grid's conditions × scenarios: every family changes the world the A/A canary lives in (pods,
routing, windows), so each cell's tuning must see that world.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np

from simulations.judges.kayenta import KayentaStyle
from simulations.judges.oracle import OracleSPRT
from simulations.judges.sluice import SluiceJudge
from simulations.latency import HeavyTail, LatencyShape, LogNormal
from simulations.metrics import (
    RunOutcomes,
    abort_times,
    cpu_seconds,
    time_quantile,
    wilson_interval,
)
from simulations.scenarios import STEPS
from simulations.schedule import WeightSchedule
from simulations.traffic import PROMETHEUS_BOUNDS, Effect, Nuisances, TrafficModel, simulate

Kind = Literal["A/A", "within tolerance", "regression"]

#: Upper limit on promotions of a 5× regression (issue 12's β); stated with the table.
BETA = 0.05
BASELINE_PODS = 20
LATENCY_TOLERANCE = 0.1  # "p99 may grow by 10%": shifts below it must not abort

#: Sluice as the product runs it by default, as a step analysis whose run ends when it pauses (a
#: person is paged). The errors metric judges the canary's pods as the sampling unit over
#: aggregate series (``pod_model``: ``canaryPods`` = the cell's canary pods, no spread declared,
#: so the default 0.1), as the controller does for a sequential counts compare with ``sum(...)``
#: queries. At a step's maximum duration it promotes when nothing failed (``inconclusive:
#: promote``), so that the families other than low traffic measure aborts and pauses, not the
#: inconclusive policy. No cell runs the ``podModel: false`` opt-out: the product does not run it
#: unless asked, and its figures are those committed before the default changed (docs/analysis.md,
#: "Benchmark families").
DEFAULT_JUDGE = SluiceJudge(stop_at_pause=True, pod_model=True)
#: Pods as the sampling unit with per-pod series (``sum by (pod)`` queries): per-pod counts,
#: ``canaryPods`` = the cell's canary pods, the spread estimated from the baseline's pods (an hour
#: of history before the rollout, then every window).
PODS = replace(DEFAULT_JUDGE, per_pod=True)
#: The same with ``podSpread`` declared at the true spread.
PODS_DECLARED = replace(PODS, declared_spread=True)
#: The latency metric with ``latencyTolerance: {increase: 10%}`` (edges near p90–p99.9).
LATENCY = replace(DEFAULT_JUDGE, latency_increase=LATENCY_TOLERANCE)
#: The product's default inconclusive policy: at a step's maximum duration without evidence of
#: no harm, pause.
PAUSE_AT_MAX = replace(DEFAULT_JUDGE, on_max_duration="pause")


@dataclass(frozen=True)
class Case:
    """One canary judged in a cell, and what it should achieve."""

    effect: Effect
    kind: Kind
    power_goal: float | None = None  # abort at least this share (a stated target)
    promote_goal: float | None = None  # promote at most this share

    @property
    def name(self) -> str:
        return self.effect.name


AA = Case(Effect(), "A/A")


def regression(effect: Effect, **goals: float) -> Case:
    return Case(effect, "regression", **goals)


@dataclass(frozen=True)
class Cell:
    """One condition of a family and the canaries judged in it (A/A first)."""

    family: str
    label: str
    total_rps: float
    cases: tuple[Case, ...]
    nuisances: Nuisances = field(default_factory=Nuisances)
    latency: LatencyShape = field(default_factory=LogNormal)
    canary_pods: int = 1
    baseline_pods: int = 1
    schedule: WeightSchedule = STEPS
    judge: SluiceJudge = DEFAULT_JUDGE
    base_error_rate: float = 0.01
    bounds: tuple[float, ...] = PROMETHEUS_BOUNDS

    def __post_init__(self) -> None:
        if not self.cases or self.cases[0] != AA:
            raise ValueError(f"cell {self.label!r}: the first case must be the A/A canary")

    def model(self, effect: Effect) -> TrafficModel:
        return TrafficModel(
            self.total_rps,
            self.base_error_rate,
            self.latency,
            effect,
            self.nuisances,
            canary_pods=self.canary_pods,
            baseline_pods=self.baseline_pods,
            bounds=self.bounds,
        )


def _rps(x: float) -> str:
    return f"{x:g} req/s"


def errors(r: float, **goals: float) -> Case:
    return regression(Effect(f"errors ×{r:g}", error_ratio=r), **goals)


def error_ratio_cells(rates: tuple[float, ...]) -> list[Cell]:
    """The classic error-ratio cells, for the ratio table's reference point."""
    out = []
    for rps in rates:
        goal = {"power_goal": 0.99} if rps == 200.0 else {}
        out.append(
            Cell(
                "error ratios",
                _rps(rps),
                rps,
                (AA, errors(1.5), errors(2.0, **goal), errors(5.0)),
            )
        )
    return out


def pod_cells(
    grid: list[tuple[float, int, float]], regress: set[tuple[float, int, float]]
) -> list[Cell]:
    """Canary pods vs a 20-pod baseline; every pod's error rate drawn with log-sd σ. Sluice
    takes pods as the sampling unit with the spread estimated; the cells in ``regress`` are run
    again with ``podSpread`` declared at the true σ."""
    out = []
    for rps, pods, sd in grid:
        cases = (AA, errors(2.0)) if (rps, pods, sd) in regress else (AA,)
        label = f"{pods} canary pod{'s' if pods > 1 else ''}, σ {sd:g}, {_rps(rps)}"
        judges = [("", PODS)]
        if (rps, pods, sd) in regress:
            judges.append((", podSpread declared", PODS_DECLARED))
        out += [
            Cell(
                "pod heterogeneity",
                label + suffix,
                rps,
                cases,
                Nuisances(pod_log_sd=sd),
                canary_pods=pods,
                baseline_pods=BASELINE_PODS,
                judge=judge,
            )
            for suffix, judge in judges
        ]
    return out


def mesh_cells(grid: list[tuple[float, float]], regress: set[tuple[float, float]]) -> list[Cell]:
    """The mesh routes ``weight × (1 + bias)`` while the judge expects ``weight``."""
    out = []
    for rps, bias in grid:
        cases = (AA, errors(2.0)) if (rps, bias) in regress else (AA,)
        out.append(
            Cell(
                "mesh imprecision",
                f"routed {bias:+.0%} of the weight, {_rps(rps)}",
                rps,
                cases,
                Nuisances(routing_bias=bias),
            )
        )
    return out


def restart_cells(grid: list[tuple[float, float]], regress: set[tuple[float, float]]) -> list[Cell]:
    """Two canary pods that restart mid-interval: ``increase()`` loses what came before."""
    out = []
    for rps, p in grid:
        cases = (AA, errors(2.0)) if (rps, p) in regress else (AA,)
        every = 10.0 / p / 60
        out.append(
            Cell(
                "counter resets",
                f"each canary pod restarts every ~{every:.0f} min, {_rps(rps)}",
                rps,
                cases,
                Nuisances(canary_restart_prob=p),
                canary_pods=2,
                baseline_pods=BASELINE_PODS,
            )
        )
    return out


#: Background analysis: 60 s windows, cut where a run's weight changes (as the run loop cuts).
WINDOWED = replace(DEFAULT_JUDGE, window_s=60.0, window_offset_s=30.0)


def window_cells(rates: tuple[float, ...], incident_free: tuple[float, ...]) -> list[Cell]:
    """Background analysis: 60 s windows ending at :30, so the window 570–630 s straddles the
    5% → 25% change at 600 s; a shared incident (errors ×10, latency ×2 in both arms) starts at
    600 s, in that window's second half, for 180 s. Sluice cuts the window at the change."""
    incident = Nuisances(incident_prob=1.0, incident_start_s=600.0)
    out = [
        Cell(
            "windows over weight changes",
            f"incident in the straddling window's 2nd half, {_rps(rps)}",
            rps,
            (AA, errors(2.0)),
            incident,
            judge=WINDOWED,
        )
        for rps in rates
    ]
    out += [
        Cell(
            "windows over weight changes",
            f"straddling windows, no incident, {_rps(rps)}",
            rps,
            (AA,),
            judge=WINDOWED,
        )
        for rps in incident_free
    ]
    return out


TAIL = Effect("tail: 2% +300 ms", tail_fraction=0.02, tail_add_s=0.3)
FINE_BOUNDS = tuple(round(0.5 * 2 ** (k / 4), 9) for k in range(-28, 17))
"""Bucket bounds 19% apart (2^(1/4): a native histogram's schema 2, or explicit buckets that
fine), 3.9 ms to 8 s, through the 0.5 s SLO: where the default buckets (2-2.5x apart) cannot see a
tail regression that stays within the tolerance at each of their bounds, these can."""


def shift(pct: float) -> Case:
    e = Effect(f"latency +{pct:g}%", latency_scale=1 + pct / 100)
    if pct / 100 < LATENCY_TOLERANCE:
        return Case(e, "within tolerance")
    return regression(e)


def latency_cells(
    tail_medians: tuple[float, ...],
    tail_rates: tuple[float, ...],
    shifts: tuple[float, ...],
    shift_rates: tuple[float, ...],
    fine_medians: tuple[float, ...] = (),
    heavy_rates: tuple[float, ...] = (),
) -> list[Cell]:
    """Tail-only regressions at medians 20–500 ms; shifts below the 10% tolerance (latency units)
    that must not abort, and above it that must; ``fine_medians``: the tail on buckets 19% apart
    (no goal: it shows what the default buckets' resolution costs); ``heavy_rates``: the shifts
    over a lognormal body with a Pareto tail, where the tail's slope changes (the shape the
    latency tolerance's slope assumption fits least)."""
    out = []
    for rps in tail_rates:
        for med in tail_medians:
            goal = {"power_goal": 0.99} if rps == 20.0 else {}
            out.append(
                Cell(
                    "latency",
                    f"median {med * 1000:g} ms, {_rps(rps)}",
                    rps,
                    (AA, regression(TAIL, **goal)),
                    latency=LogNormal(median_s=med),
                    judge=LATENCY,
                )
            )
    out += [
        Cell(
            "latency",
            f"median {med * 1000:g} ms, 20 req/s, buckets 19% apart",
            20.0,
            (AA, regression(TAIL)),
            latency=LogNormal(median_s=med),
            judge=LATENCY,
            bounds=FINE_BOUNDS,
        )
        for med in fine_medians
    ]
    for rps in shift_rates:
        out.append(
            Cell(
                "latency",
                f"median 80 ms, shifts, {_rps(rps)}",
                rps,
                (AA, *(shift(p) for p in shifts)),
                judge=LATENCY,
            )
        )
    out += [
        Cell(
            "latency",
            f"heavy tail (5% Pareto past 150 ms), shifts, {_rps(rps)}",
            rps,
            (AA, *(shift(p) for p in shifts)),
            latency=HeavyTail(),
            judge=LATENCY,
        )
        for rps in heavy_rates
    ]
    return out


def low_traffic_cells(rates: tuple[float, ...]) -> list[Cell]:
    """How often a 5× error regression is promoted when there is hardly any traffic: with the
    default inconclusive policy (pause at a step's maximum duration without evidence of no
    harm), which promises β, and with ``inconclusive: promote``, which gives β up by design (no
    goal: shown for what it costs)."""
    out = []
    for rps in rates:
        out.append(
            Cell(
                "low traffic",
                _rps(rps),
                rps,
                (AA, errors(5.0, promote_goal=BETA)),
                judge=PAUSE_AT_MAX,
            )
        )
        out.append(
            Cell("low traffic", f"{_rps(rps)}, inconclusive: promote", rps, (AA, errors(5.0)))
        )
    return out


def families(quick: bool) -> list[Cell]:
    """Every cell; ``quick`` is a subset chosen to hit each target once."""
    if quick:
        return [
            *error_ratio_cells((20.0, 200.0)),
            *pod_cells(
                [
                    (2000.0, 1, 0.5),
                    (2000.0, 2, 0.25),
                    (2000.0, 2, 0.5),
                    (2000.0, 5, 0.5),
                    (200.0, 2, 0.5),
                ],
                {(2000.0, 2, 0.5), (200.0, 2, 0.5)},
            ),
            *mesh_cells([(20.0, -0.2), (200.0, -0.2), (200.0, 0.2)], {(200.0, -0.2)}),
            *restart_cells([(200.0, 0.01), (200.0, 0.05)], {(200.0, 0.05)}),
            *window_cells((200.0,), (200.0,)),
            *latency_cells((0.02, 0.1, 0.5), (20.0,), (3.0, 5.0, 25.0), (2000.0,)),
            *low_traffic_cells((0.1, 0.5)),
        ]
    return [
        *error_ratio_cells((5.0, 20.0, 200.0, 2000.0)),
        *pod_cells(
            [
                (rps, pods, sd)
                for rps in (20.0, 200.0, 2000.0)
                for pods in (1, 2, 3, 5)
                for sd in (0.0, 0.1, 0.25, 0.5)
            ],
            {(rps, 2, sd) for rps in (200.0, 2000.0) for sd in (0.0, 0.25, 0.5)},
        ),
        *mesh_cells(
            [(rps, b) for rps in (5.0, 20.0, 200.0, 2000.0) for b in (-0.2, -0.1, 0.1, 0.2)],
            {(rps, -0.2) for rps in (20.0, 200.0, 2000.0)},
        ),
        *restart_cells(
            [(rps, p) for rps in (20.0, 200.0, 2000.0) for p in (0.003, 0.01, 0.05)],
            {(rps, 0.05) for rps in (20.0, 200.0, 2000.0)},
        ),
        *window_cells((20.0, 200.0, 2000.0), (200.0, 2000.0)),
        *latency_cells(
            (0.02, 0.05, 0.1, 0.2, 0.5),
            (20.0, 200.0),
            (3.0, 5.0, 8.0, 15.0, 25.0),
            (200.0, 2000.0),
            fine_medians=(0.1,),
            heavy_rates=(200.0, 2000.0),
        ),
        *low_traffic_cells((0.1, 0.2, 0.5, 1.0, 2.0, 5.0)),
    ]


@dataclass(frozen=True)
class FamilyRow:
    """Sluice's figures in one case of one cell, and the comparators' medians there."""

    family: str
    cell: str
    case: str
    kind: str
    total_rps: float
    runs: int
    aborts: int
    abort_rate: float
    abort_lo: float
    abort_hi: float
    promoted: int
    promoted_rate: float
    promoted_hi: float
    paused: int
    paused_rate: float
    paused_hi: float
    median_tta_s: float
    p90_tta_s: float
    median_promote_s: float
    power_goal: float | None
    promote_goal: float | None
    oracle_median_tta_s: float
    kayenta_median_tta_s: float
    kayenta_tuned_median_tta_s: float
    kayenta_tuned_setting: str
    kayenta_tuned_power: float
    sluice_aa_rate: float

    @property
    def ratio_oracle(self) -> float:
        return speed_ratio(self.median_tta_s, self.oracle_median_tta_s)

    @property
    def ratio_kayenta(self) -> float:
        return speed_ratio(self.median_tta_s, self.kayenta_tuned_median_tta_s)


def speed_ratio(a: float, b: float) -> float:
    """``a / b`` of two median times; inf when only ``a`` was not reached, NaN when ``b`` was not."""
    if math.isfinite(a) and math.isfinite(b) and b > 0:
        return a / b
    if not math.isfinite(a) and math.isfinite(b):
        return math.inf
    return math.nan


def _seed(base: int, *labels: str) -> int:
    return (base * 1_000_003 + zlib.crc32("|".join(labels).encode())) % (2**32)


def _median_tta(abort_s: np.ndarray, onset_s: float) -> float:
    tta = np.where(np.isfinite(abort_s), np.maximum(abort_s - onset_s, 0.0), np.inf)
    return time_quantile(tta, 0.5)


def _fixed_median(trace_times: np.ndarray, ticks: np.ndarray, onset_s: float) -> float:
    return _median_tta(abort_times(ticks, trace_times), onset_s)


def summarise(
    cell: Cell,
    case: Case,
    out: RunOutcomes,
    sluice_aa_rate: float,
    comparators: tuple[float, float, float, str, float],
) -> FamilyRow:
    n = out.runs
    aborted = np.isfinite(out.abort_s)
    k = int(aborted.sum())
    lo, hi = wilson_interval(k, n)
    promoted = np.isfinite(out.promote_s)
    kp = int(promoted.sum())
    paused = np.isfinite(out.pause_s) if out.pause_s is not None else np.zeros(n, dtype=bool)
    kq = int(paused.sum())
    tta = np.where(aborted, np.maximum(out.abort_s - case.effect.onset_s, 0.0), np.inf)
    oracle, kay, kay_tuned, setting, kay_power = comparators
    return FamilyRow(
        family=cell.family,
        cell=cell.label,
        case=case.name,
        kind=case.kind,
        total_rps=cell.total_rps,
        runs=n,
        aborts=k,
        abort_rate=k / n,
        abort_lo=lo,
        abort_hi=hi,
        promoted=kp,
        promoted_rate=kp / n,
        promoted_hi=wilson_interval(kp, n)[1],
        paused=kq,
        paused_rate=kq / n,
        paused_hi=wilson_interval(kq, n)[1],
        median_tta_s=time_quantile(tta, 0.5),
        p90_tta_s=time_quantile(tta, 0.9),
        median_promote_s=float(np.median(out.promote_s[promoted])) if kp else math.inf,
        power_goal=case.power_goal,
        promote_goal=case.promote_goal,
        oracle_median_tta_s=oracle,
        kayenta_median_tta_s=kay,
        kayenta_tuned_median_tta_s=kay_tuned,
        kayenta_tuned_setting=setting,
        kayenta_tuned_power=kay_power,
        sluice_aa_rate=sluice_aa_rate,
    )


def run_cell(cell: Cell, runs: int, seed: int) -> list[FamilyRow]:
    """Sluice on every case of one cell; the oracle and Kayenta-style judges on its regressions,
    Kayenta also tuned on the cell's A/A runs to Sluice's A/A rate there (at most α)."""
    sluice = cell.judge
    sched = cell.schedule
    outcomes = [
        sluice.run(cell.model(c.effect), sched, runs, _seed(seed, cell.label, c.name, "S"))
        for c in cell.cases
    ]
    aa_rate = float(np.isfinite(outcomes[0].abort_s).mean())
    nan = (math.nan, math.nan, math.nan, "", math.nan)
    needs_tuning = any(c.kind == "regression" for c in cell.cases)
    tuned: KayentaStyle | None = None
    if needs_tuning:
        cal_runs = max(2 * runs, 200)
        # Never tuned less safe than α: where Sluice misses its own bound the comparison is at α.
        target = min(max(aa_rate, 1.0 / cal_runs), sluice.alpha)
        cal = simulate(cell.model(AA.effect), sched, cal_runs, _seed(seed, cell.label, "cal"))
        tuned = KayentaStyle().tuned(cal, target)
    rows = []
    for case, out in zip(cell.cases, outcomes, strict=True):
        comp = nan
        if case.kind == "regression" and tuned is not None:
            tr = simulate(cell.model(case.effect), sched, runs, _seed(seed, cell.label, case.name))
            onset = case.effect.onset_s
            ticks_tuned = tuned.abort_ticks(tr)
            comp = (
                _fixed_median(tr.times, OracleSPRT(alpha=sluice.alpha).abort_ticks(tr), onset),
                _fixed_median(tr.times, KayentaStyle().abort_ticks(tr), onset),
                _fixed_median(tr.times, ticks_tuned, onset),
                tuned.parameter,
                float(np.mean(ticks_tuned >= 0)),
            )
        rows.append(summarise(cell, case, out, aa_rate, comp))
    return rows


def main(argv: list[str] | None = None) -> int:
    from simulations.families_report import render_markdown, update_docs

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--quick", action="store_true", help="a subset of the cells (minutes)")
    p.add_argument("--runs", type=int, default=None, help="runs per case (300 quick, 1000 full)")
    p.add_argument("--seed", type=int, default=20261202)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    p.add_argument("--docs", type=Path, default=Path(__file__).parents[1] / "docs" / "analysis.md")
    p.add_argument("--no-docs", action="store_true", help="do not rewrite the docs' table")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = p.parse_args(argv)
    runs = args.runs or (300 if args.quick else 1000)
    if runs < 1:
        p.error("--runs must be >= 1")
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    cells = families(args.quick)
    # Costliest first (cases × pods), so the pool's last task is a short one.
    order = sorted(cells, key=lambda c: -(len(c.cases) * (c.canary_pods + c.baseline_pods)))
    by_cell: dict[str, list[FamilyRow]] = {}
    with ProcessPoolExecutor(max_workers=max(args.jobs, 1)) as pool:
        futures = [pool.submit(run_cell, c, runs, args.seed) for c in order]
        for c, f in zip(order, futures, strict=True):
            by_cell[c.family + c.label] = f.result()
            print(f"[{time.perf_counter() - started:6.1f}s] {c.family}: {c.label}", file=sys.stderr)
    rows = [r for c in cells for r in by_cell[c.family + c.label]]
    wall = time.perf_counter() - started
    cpu = cpu_seconds()
    name = "families" if args.quick else "families-full"
    command = (
        "python -m simulations.families"
        + (" --quick" if args.quick else "")
        + (f" --runs {args.runs}" if args.runs else "")
        + (f" --seed {args.seed}" if args.seed != 20261202 else "")
    )
    meta = {
        "command": command,
        "runs": runs,
        "seed": args.seed,
        "cells": len(cells),
        "cpu_s": round(cpu, 1),
        "wall_s": round(wall, 1),
        "jobs": args.jobs,
        "source": f"simulations/results/{name}.json",
        "judge": DEFAULT_JUDGE.describe(),
    }
    (args.out / f"{name}.json").write_text(
        json.dumps({"meta": meta, "rows": [asdict(r) for r in rows]}, indent=1) + "\n"
    )
    (args.out / f"{name}.md").write_text(render_markdown(rows, meta))
    if not args.no_docs:
        update_docs(args.docs, rows, meta)
        print(f"updated {args.docs}", file=sys.stderr)
    print(f"wrote {args.out / (name + '.md')}: {len(rows)} rows, {wall:.0f} s wall clock")
    print(f"CPU time {cpu:.1f} s (this process and its workers, user + system)")
    return 0


def rows_from_json(data: dict[str, object]) -> list[FamilyRow]:
    """The rows of a results file, for re-rendering (and for the docs' consistency test)."""
    raw = data["rows"]
    assert isinstance(raw, list)
    return [FamilyRow(**r) for r in raw]


if __name__ == "__main__":
    raise SystemExit(main())
