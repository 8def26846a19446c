"""kopf's peering pause reaches a listener through kopf's own daemon killer (rollouts.kopf_pause):
the real task kopf starts per operator, driven by a real pause toggle set."""

from __future__ import annotations

import asyncio
import contextlib

import kopf
from kopf._cogs.aiokits import aiotoggles
from kopf._core.engines import daemons
from kopf._core.reactor import inventory

from rollouts import kopf_pause, kopf_toggles


class Heard(list[tuple[bool, tuple[str, ...]]]):
    def __call__(self, paused: bool, reasons: tuple[str, ...]) -> None:
        self.append((paused, reasons))


async def settle(calls: list[tuple[bool, tuple[str, ...]]], n: int) -> None:
    for _ in range(200):
        if len(calls) >= n:
            return
        await asyncio.sleep(0.01)


async def test_the_listener_hears_each_pause_and_resume_of_its_own_operator() -> None:
    kopf_toggles.install()
    kopf_pause.install()
    kopf_pause.install()  # idempotent: one wrapper, not two
    assert getattr(daemons.daemon_killer, "_sluice_mirrors_pause", False)

    mine, other = Heard(), Heard()
    paused = aiotoggles.ToggleSet(any)
    elsewhere = aiotoggles.ToggleSet(any)
    kwargs = {"settings": kopf.OperatorSettings(), "memories": inventory.ResourceMemories()}
    with kopf_pause.listening(mine):  # as rollouts.operator._operate starts kopf
        killer = asyncio.create_task(daemons.daemon_killer(operator_paused=paused, **kwargs))
    with kopf_pause.listening(other):  # a second operator in the same process
        second = asyncio.create_task(daemons.daemon_killer(operator_paused=elsewhere, **kwargs))
    try:
        peer = await paused.make_toggle(False, name="a peer of higher priority")
        await asyncio.sleep(0.05)
        assert mine == []  # the set is off: nothing to tell

        await peer.turn_to(True)
        await settle(mine, 1)
        assert mine == [(True, ("a peer of higher priority",))]  # kopf's reason, for the log
        await peer.turn_to(False)
        await settle(mine, 2)
        assert mine[1:] == [(False, ())]
        await peer.turn_to(True)
        await settle(mine, 3)
        assert [paused for paused, _ in mine] == [True, False, True]
        assert other == []  # the other operator's listener heard none of it
    finally:
        for task in (killer, second):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    # an operator stopping holds its queue too, before kopf's peering lets a standby work
    assert mine[-1] == other[-1] == (True, ("the operator is exiting",))


async def test_a_stopping_operator_tells_its_listener_in_the_step_it_is_cancelled() -> None:
    """kopf removes the replica's peering record with a PATCH sent as its keepalive task unwinds
    (a network round trip at least), and a standby works only once it has seen that: the hold
    must come first, so it is told before the wrapper awaits anything."""
    kopf_toggles.install()
    kopf_pause.install()
    heard = Heard()
    paused = aiotoggles.ToggleSet(any)
    kwargs = {"settings": kopf.OperatorSettings(), "memories": inventory.ResourceMemories()}
    with kopf_pause.listening(heard):
        killer = asyncio.create_task(daemons.daemon_killer(operator_paused=paused, **kwargs))
    await asyncio.sleep(0.05)
    killer.cancel()
    await asyncio.sleep(0)  # one turn of the loop: the killer's first step after the cancel
    assert heard == [(True, ("the operator is exiting",))]
    with contextlib.suppress(asyncio.CancelledError):
        await killer


def test_kopfs_peering_toggle_names_are_told_in_words() -> None:
    said = kopf_pause.reason("sluice.dev@None")
    assert said.startswith("peering sluice.dev@None: ") and "higher or equal priority" in said
    assert kopf_pause.reason("peering CRD is missing") == "peering CRD is missing"


async def test_an_operator_started_without_a_listener_runs_kopfs_killer_alone() -> None:
    kopf_pause.install()
    paused = aiotoggles.ToggleSet(any)
    kwargs = {"settings": kopf.OperatorSettings(), "memories": inventory.ResourceMemories()}
    killer = asyncio.create_task(daemons.daemon_killer(operator_paused=paused, **kwargs))
    toggle = await paused.make_toggle(True)
    await asyncio.sleep(0.05)
    assert not killer.done()  # kopf's own loop runs on, with no mirror beside it
    await toggle.turn_to(False)
    killer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await killer
