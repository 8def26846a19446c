"""``rollouts.operator.supervised``: a kopf that began to stop and cannot finish ends the process.

kopf 1.45 stops by itself when a watcher fails for good, then can wait forever for that watcher's
workers (shielded from cancellation). Measured with a controller process whose list of one kind
the API server refused: it stayed up, its reconcile queue held, for as long as anyone waited.
Here kopf's operator is a coroutine that behaves that way, so the test needs no minute of kopf's
retries."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from rollouts.operator import EXIT_STUCK, supervised


async def kopf_that_hangs_on_exit(exiting: asyncio.Event) -> None:
    exiting.set()  # kopf_pause's exit notice: the operator has begun to stop
    while True:  # ... and its clean-up never ends, whatever cancels it
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(3600)


def test_a_stop_that_never_finishes_ends_the_process_after_the_grace() -> None:
    exits: list[int] = []

    async def main() -> None:
        exiting = asyncio.Event()
        operator = asyncio.ensure_future(kopf_that_hangs_on_exit(exiting))

        def on_stuck(code: int) -> None:
            exits.append(code)
            raise SystemExit(code)  # what os._exit does, as far as this loop can tell

        await supervised(operator, exiting, on_stuck, grace=0.2)

    with pytest.raises(SystemExit):
        asyncio.run(asyncio.wait_for(main(), 10))
    assert exits == [EXIT_STUCK]


def test_a_stop_that_finishes_within_the_grace_is_left_alone() -> None:
    exits: list[int] = []

    async def kopf_stopping(exiting: asyncio.Event) -> str:
        exiting.set()
        await asyncio.sleep(0.1)  # its clean-up, done in time
        return "stopped"

    async def main() -> None:
        exiting = asyncio.Event()
        operator = asyncio.ensure_future(kopf_stopping(exiting))
        await supervised(operator, exiting, exits.append, grace=5)
        assert operator.result() == "stopped"

    asyncio.run(main())
    assert exits == []


def test_its_failure_is_the_callers_and_without_on_stuck_it_only_waits() -> None:
    async def kopf_failing() -> None:
        raise RuntimeError("Multidimensional multitasker has failed")

    async def main() -> None:
        await supervised(asyncio.ensure_future(kopf_failing()), asyncio.Event(), None)

    with pytest.raises(RuntimeError, match="multitasker"):
        asyncio.run(main())


def test_cancelling_it_cancels_kopf() -> None:
    async def main() -> bool:
        operator = asyncio.ensure_future(asyncio.sleep(3600))
        task = asyncio.ensure_future(supervised(operator, asyncio.Event(), None))
        await asyncio.sleep(0.05)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return operator.cancelled()

    assert asyncio.run(main())
