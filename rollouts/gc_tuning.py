"""Python's cyclic garbage collector, tuned for a controller whose heap grows with its fleet.

With the default thresholds (700, 10, 10) the collector runs a full collection every few tens of
thousands of container allocations (when the long-lived objects have also grown by a quarter), and
a full collection walks every tracked object: the watch indexes and the controller's caches hold
each watched object of the fleet, so each pass costs more as the fleet grows. Measured with
``benchmarks/scale.py`` at 1,000 Rollouts (one run each, the collector's own CPU timed in its
callbacks): 11.4 s of the controller's 90 s of CPU went to collections (3,128 young, 284 middle,
23 full), against 3.3 s of 81 s (254, 22, 2) with :func:`tune_gc`. In the full benchmark
(benchmarks/results/scale.md) the burst cost 30 ms of CPU per Rollout instead of 35, and one
process held a first-weight p99 of 0.50 s at 30 new revisions a second instead of 1.3 s; the
price is memory, as cyclic garbage waits longer: 276 MB at the end instead of 251 MB. At 300
Rollouts (alternated runs) it gains no CPU and adds pauses of about 0.1 s to the paced latency's
tail (p99 0.10-0.14 s against 0.04 s; most likely its young collections, each walking up to
50,000 objects): it pays where full collections walk a large fleet.

What it does, once per process (``sluice run`` calls it before the operator starts; the tests'
in-process operators do not): a collection, then ``gc.freeze()`` of what is alive at that point
(modules, the client's and kopf's classes and schemas: they live for the process, so walking
them in every full collection finds nothing), and a young-generation threshold of 10,000
allocations instead of 700 (most of a reconcile's objects are freed by reference counting long
before that; garbage cycles wait longer to go), with the middle generation collected after 100
young collections, so that it and the full collections come as rarely as before (over whole
1,000-Rollout benchmark runs, at either threshold: no middle collection and one full one; young
ones 56-66 against 9).

Why 10,000 and not the 50,000 first chosen: a young collection stops every thread, and in a
burst it finds every in-flight object alive. At 1,000 Rollouts with 50,000 the burst held one
young collection of 70-100 ms of CPU, and in each of four runs (``benchmarks/scale.py`` with
``SLUICE_BENCH_GC_LOG``) the slowest second of updates was the one it fell in (most likely the
work that piled up behind it took most of a second to drain at 80% load), and the first-weight p99 was
0.56-0.78 s. With 10,000 the burst held seven to nine collections of 30-50 ms each (about 0.2 s
of CPU in all, 0.1 s more); the slowest second still often held one, but it piled up less, and
the p99 was 0.44-0.60 s (five runs on the same machine, alternated with the others).
"""

from __future__ import annotations

import gc

THRESHOLDS = (10_000, 100, 10)
"""Collections of generation 0 after this many net container allocations, of generation 1 after
100 of generation 0, of generation 2 after 10 of generation 1 (and CPython's own rule that the
long-lived objects have grown by a quarter)."""

_frozen = False


def tune_gc() -> None:
    """Raise the thresholds (every call) and freeze what is alive now (the first call only: a
    process that starts several operators, as the tests do, freezes once)."""
    global _frozen
    gc.set_threshold(*THRESHOLDS)
    if not _frozen:
        gc.collect()
        gc.freeze()
        _frozen = True
