"""Time the controller's analysis path per tick: resolving a run's state from JSON, measuring,
updating every metric's e-process, and writing the state back, as ``AnalysisVerdicts.tick`` (the
reconcile cycle's first phase) does for each Rollout on every reconcile.

Why a script and not a test: speed depends on the machine; it is measured and printed, never
asserted. The example canary (two metrics: error-rate counts and a latency histogram) is run through
``sluice simulate``'s Simulation on the simulated provider, so Prometheus latency is excluded; add
a Prometheus round trip (a few ms on loopback) per query for the real figure.
Run: ``python benchmarks/analysis_tick.py``.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import yaml

from rollouts.api.validation import parse_rollout
from rollouts.simulator.simulation import SimOptions, Simulation
from rollouts.verdicts.analysis_runs import AnalysisVerdicts
from simulations.simulated_provider import SCENARIOS

EXAMPLE = Path(__file__).resolve().parents[1] / "deploy/examples/canary-analysis.yaml"


def main() -> None:
    docs = [d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d]
    rollout = next(d for d in docs if d.get("kind") == "Rollout")
    templates = tuple(d for d in docs if d.get("kind") != "Rollout")
    sim = Simulation(
        parse_rollout(rollout), SimOptions(scenario=SCENARIOS["healthy"], templates=templates)
    )
    assert isinstance(sim.verdicts, AnalysisVerdicts)
    source = sim.verdicts
    times: list[float] = []
    measured: list[float] = []
    original = source.tick

    def timed(r: Any) -> Any:
        t0 = time.perf_counter()
        before = _measurements(source)
        out = original(r)
        dt = time.perf_counter() - t0
        times.append(dt)
        if _measurements(source) > before:
            measured.append(dt)
        return out

    source.tick = timed  # type: ignore[method-assign]
    wall = time.perf_counter()
    result = sim.run()
    wall = time.perf_counter() - wall
    print(
        f"canary-analysis example, healthy scenario: {result.reason} after {result.seconds:.0f} s simulated"
    )
    print(f"  whole simulation: {wall * 1000:.0f} ms wall clock, {len(times)} reconciles")
    print(f"  tick() per reconcile: median {statistics.median(times) * 1000:.2f} ms")
    if measured:
        print(
            f"  tick() on ticks that took measurements ({len(measured)}): "
            f"median {statistics.median(measured) * 1000:.2f} ms, max {max(measured) * 1000:.2f} ms"
        )


def _measurements(source: AnalysisVerdicts) -> int:
    store: Any = source.store
    return sum(
        m.successful + m.failed + m.inconclusive + m.errors
        for run in store.runs.values()
        if run.status is not None
        for m in run.status.metrics
    )


if __name__ == "__main__":
    main()
