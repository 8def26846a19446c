"""The scale benchmark's collection log: what a process logs is what the report reads back, by
process and time window. In a fresh interpreter, so this test process's collector keeps no
callback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmarks.gc_log import ENV, pauses

ROOT = Path(__file__).resolve().parents[3]

SCRIPT = """
import gc
from benchmarks.gc_log import log_collections
log_collections("controller-1")
gc.collect(0)
gc.collect(2)
gc.collect(2)
"""


def test_each_collection_is_logged_and_read_back_by_generation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = tmp_path / "gc"
    before = time.time()
    subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env={**os.environ, ENV: str(prefix)},
        check=True,
        timeout=60,
    )
    after = time.time()
    monkeypatch.setenv(ENV, str(prefix))
    found = pauses("controller", before, after)
    assert found["gen0"].count >= 1
    assert found["gen2"].count >= 2
    assert 0 <= found["gen2"].longest < after - before
    assert pauses("emulator", before, after) == {}  # another process's tag
    assert pauses("controller", after + 1, after + 2) == {}  # outside the window


def test_nothing_is_logged_or_read_without_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    assert pauses("controller", 0, time.time()) == {}
