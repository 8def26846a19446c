"""FastToggleSet behaves as kopf's ToggleSet, without waking every waiter on every change."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from kopf._cogs.aiokits import aiotoggles

from rollouts import kopf_toggles
from rollouts.kopf_toggles import FastToggleSet

KopfToggleSet = kopf_toggles._KopfToggleSet


@pytest.mark.parametrize("fn", [all, any])
@pytest.mark.parametrize("seed", range(20))
def test_the_state_follows_kopfs_over_random_operations(fn: Any, seed: int) -> None:
    async def main() -> None:
        rng = random.Random(seed)
        ours, theirs = FastToggleSet(fn), KopfToggleSet(fn)
        pairs: list[tuple[aiotoggles.Toggle, aiotoggles.Toggle]] = []
        for _ in range(200):
            op = rng.random()
            if op < 0.4 or not pairs:
                val = rng.random() < 0.5
                pairs.append((await ours.make_toggle(val), await theirs.make_toggle(val)))
            elif op < 0.7:
                a, b = rng.choice(pairs)
                val = rng.random() < 0.5
                await a.turn_to(val)
                await b.turn_to(val)
            elif op < 0.9:
                a, b = pairs.pop(rng.randrange(len(pairs)))
                await ours.drop_toggle(a)
                await theirs.drop_toggle(b)
            else:
                k = rng.randrange(len(pairs) + 1)
                dropped, pairs[:] = pairs[:k], pairs[k:]
                await ours.drop_toggles(a for a, _ in dropped)
                await theirs.drop_toggles(b for _, b in dropped)
            assert ours.is_on() == theirs.is_on()
            assert len(ours) == len(theirs)

    asyncio.run(main())


def test_waiters_wake_when_the_state_becomes_theirs_and_not_before() -> None:
    async def main() -> None:
        s = FastToggleSet(all)
        assert s.is_on()  # no toggles: all() of nothing
        toggles = [await s.make_toggle(False) for _ in range(3)]
        woken: list[str] = []

        async def wait(state: bool, tag: str) -> None:
            await s.wait_for(state)
            woken.append(tag)

        on = asyncio.create_task(wait(True, "on"))
        off = asyncio.create_task(wait(False, "off"))
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert woken == ["off"]  # already off: returns at once
        await s.drop_toggle(toggles[0])
        await toggles[1].turn_to(True)
        await asyncio.sleep(0)
        assert woken == ["off"]  # one toggle still off
        await toggles[2].turn_to(True)
        await asyncio.wait_for(on, 1)
        assert woken == ["off", "on"]
        await off

    asyncio.run(main())


def test_a_start_with_thousands_of_waiting_objects_completes() -> None:
    """kopf's start: each object adds a toggle, waits for the set, and drops its toggle once
    indexed. kopf's class wakes every waiter on every change (about 3,000³ steps); this set
    wakes them once, when the set turns on."""

    async def main() -> None:
        s = FastToggleSet(all)
        gate = await s.make_toggle(False)  # the listing is not over yet
        done = 0

        async def worker(toggle: aiotoggles.Toggle) -> None:
            nonlocal done
            await s.drop_toggle(toggle)  # this object is indexed
            await s.wait_for(True)  # every object and kind is
            done += 1

        tasks = [asyncio.create_task(worker(await s.make_toggle(False))) for _ in range(3000)]
        await asyncio.sleep(0)
        assert done == 0 and not s.is_on()
        await s.drop_toggle(gate)
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
        assert done == 3000 and s.is_on()

    asyncio.run(main())


def test_installed_for_the_controller() -> None:
    import rollouts.operator  # noqa: F401  (installs it at import)

    assert aiotoggles.ToggleSet is FastToggleSet
