"""The reconcile queue holds everything while its replica is paused (kopf's peering), and hands
back what it held: a paused replica must decide nothing from watches kopf has stopped."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from rollouts.reconcile_queue import Key, ReconcileQueue


class Recorder:
    """The queue's work: records each run; a key in ``block`` waits for its event first."""

    def __init__(self) -> None:
        self.runs: list[tuple[Key, bool]] = []
        self.started = threading.Event()
        self.block: dict[Key, threading.Event] = {}
        self._lock = threading.Lock()

    def __call__(self, key: Key, timed: bool) -> None:
        self.started.set()
        gate = self.block.get(key)
        if gate is not None:
            gate.wait(10)
        with self._lock:
            self.runs.append((key, timed))

    def ran(self) -> list[tuple[Key, bool]]:
        with self._lock:
            return list(self.runs)


def wait_for(check: object, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return False


@pytest.fixture()
def work() -> Recorder:
    return Recorder()


@pytest.fixture()
def queue(work: Recorder) -> Iterator[ReconcileQueue]:
    q = ReconcileQueue(work, workers=1)
    q.start()
    yield q
    q.stop()


A, B, C = ("ns", "a"), ("ns", "b"), ("ns", "c")


def ran_as(work: Recorder, expected: dict[Key, bool]) -> bool:
    """Each key ran once, with the reason expected (in any order: the pool has its own)."""
    runs = work.ran()
    return len(runs) == len(expected) and dict(runs) == expected


def test_nothing_runs_while_paused_and_resume_runs_what_was_held(
    queue: ReconcileQueue, work: Recorder
) -> None:
    queue.pause()
    assert queue.paused
    queue.submit(A)  # an event
    queue.submit(A, timed=True)  # merged: the stronger reason stays
    queue.at(B, 0.05)  # a pause ending, due during the pause
    queue.at(C, 0.05, timed=False)  # a drift re-check
    assert wait_for(lambda: queue.sizes()["held"] == 3)
    time.sleep(0.1)  # nothing may run meanwhile: a worker would have picked A up by now
    assert work.ran() == []

    assert queue.resume() == 3
    assert queue.sizes()["held"] == 0 and not queue.paused
    assert wait_for(lambda: ran_as(work, {A: True, B: True, C: False})), work.ran()


def test_a_run_in_progress_finishes_and_one_queued_behind_it_is_held(
    queue: ReconcileQueue, work: Recorder
) -> None:
    gate = work.block[A] = threading.Event()
    queue.submit(A)
    assert work.started.wait(5)
    queue.submit(B, timed=True)  # queued behind A on the one worker, not started
    queue.submit(A)  # submitted while A runs: would run again after it
    queue.pause()
    gate.set()
    assert wait_for(lambda: queue.sizes()["held"] == 2)
    assert work.ran() == [(A, False)]  # the run in progress finished, nothing after it
    assert queue.resume() == 2
    assert wait_for(lambda: dict(work.ran()[1:]) == {A: False, B: True}), work.ran()


def test_cancel_drops_a_held_key(queue: ReconcileQueue, work: Recorder) -> None:
    queue.pause()
    queue.submit(A, timed=True)
    queue.submit(B)
    queue.cancel(A)
    assert queue.resume() == 1
    assert wait_for(lambda: work.ran() == [(B, False)]), work.ran()
