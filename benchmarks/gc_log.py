"""Each garbage collection of a benchmark process, one line each, when ``SLUICE_BENCH_GC_LOG``
names a file prefix: to tell a latency spike that a collection paused (in the controller, the
emulator or the driver) from one the CPU scheduler caused.

Each process appends to ``PREFIX.TAG``: the collection's end (Unix time), its generation, its
wall and CPU seconds, and the objects it freed.
"""

from __future__ import annotations

import gc
import math
import os
import time
from pathlib import Path
from typing import Any, NamedTuple

ENV = "SLUICE_BENCH_GC_LOG"


def log_collections(tag: str) -> None:
    """From now on, every collection of this process goes to ``PREFIX.TAG`` (nothing without
    the variable)."""
    prefix = os.environ.get(ENV)
    if not prefix:
        return
    out = open(f"{prefix}.{tag}", "a", buffering=1)  # noqa: SIM115 - open for the process's life
    began = [0.0, 0.0]

    def on(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            began[0], began[1] = time.perf_counter(), time.thread_time()
            return
        wall, cpu = time.perf_counter() - began[0], time.thread_time() - began[1]
        out.write(
            f"{time.time():.3f} {info['generation']} {wall:.4f} {cpu:.4f} {info['collected']}\n"
        )

    gc.callbacks.append(on)


class Pauses(NamedTuple):
    count: int
    longest: float
    """Wall seconds of the longest collection (the process stood still that long)."""
    cpu: float
    """CPU seconds of all of them."""


def pauses(tag: str, start: float, end: float) -> dict[str, Pauses]:
    """Collections of the processes whose tag starts with ``tag`` between two Unix times, by
    generation (empty without the variable)."""
    prefix = os.environ.get(ENV)
    if not prefix:
        return {}
    found: dict[str, list[tuple[float, float]]] = {}
    base = Path(prefix)
    for path in base.parent.glob(f"{base.name}.{tag}*"):
        for line in path.read_text().splitlines():
            at, gen, wall, cpu, _ = line.split()
            if start <= float(at) <= end:
                found.setdefault(f"gen{gen}", []).append((float(wall), float(cpu)))
    return {
        gen: Pauses(len(xs), max((w for w, _ in xs), default=math.nan), sum(c for _, c in xs))
        for gen, xs in sorted(found.items())
    }
