"""The collector's tuning: thresholds raised on every call, the live heap frozen once, and cyclic
garbage made afterwards still collected. In a fresh interpreter each, so the test process's own
collector is left as it is (a freeze cannot be undone for the objects it froze)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from rollouts.gc_tuning import THRESHOLDS

ROOT = Path(__file__).resolve().parents[3]

SCRIPT = """
import gc, json, weakref
from rollouts.gc_tuning import tune_gc

out = {"default": gc.get_threshold()}
tune_gc()
out["threshold"], out["frozen"] = gc.get_threshold(), gc.get_freeze_count()
kept = [[i] for i in range(10_000)]  # alive, tracked, made after the freeze
gc.set_threshold(700, 10, 10)
tune_gc()  # a second operator in the same process: thresholds again, no second freeze
out["threshold_again"], out["frozen_again"] = gc.get_threshold(), gc.get_freeze_count()

class Node:
    other = None

a, b = Node(), Node()
a.other, b.other = b, a  # a cycle: only the collector frees it
gone = weakref.ref(a)
del a, b
gc.collect()
out["cycle_collected"] = gone() is None
print(json.dumps(out))
"""


def _run() -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    out: dict[str, Any] = json.loads(done.stdout)
    return out


def test_thresholds_are_raised_and_the_live_heap_frozen_once() -> None:
    out = _run()
    assert tuple(out["default"]) != THRESHOLDS  # Python's own defaults before
    assert tuple(out["threshold"]) == THRESHOLDS
    assert out["frozen"] > 0
    assert tuple(out["threshold_again"]) == THRESHOLDS
    assert out["frozen_again"] == out["frozen"]


def test_cyclic_garbage_made_after_the_freeze_is_still_collected() -> None:
    assert _run()["cycle_collected"] is True
