"""kopf's ToggleSet with constant-time state, so a large fleet's start is linear, not cubic.

kopf holds every object's handlers until all its indexes are filled: at start each listed object
adds a toggle to one ``ToggleSet(all)`` and drops it once indexed, and every object's worker
waits on that set. kopf's set wakes *every* waiter on *every* add or drop (one shared
``asyncio.Condition``), and each waiter re-evaluates ``all(...)`` over every toggle, so a start
with N watched objects costs about N³ steps: with 3,000 Rollouts (some 15,000 objects with their
Deployments, Services and VirtualServices) the controller used 13 minutes of CPU in its first 16
without settling the fleet (84 s with this set).

This set counts its toggles that are on and off, so its state is known in constant time, and its
waiters wait on one ``asyncio.Event`` per state, set only when the state becomes that state. The
semantics are kopf's (``all`` or ``any`` over the children; other functions fall back to
evaluating them). Installed by :func:`install`, which ``rollouts.operator`` calls at import;
kopf builds its sets through the module attribute at run time. The tests in
``tests/unit/rollouts/test_kopf_toggles.py`` check it against kopf's own class.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from kopf._cogs.aiokits import aiotoggles

_KopfToggleSet = aiotoggles.ToggleSet


class _CountedToggle(aiotoggles.Toggle):
    """A child toggle that tells its set when it flips."""

    def __init__(self, state: bool, *, name: str | None, owner: FastToggleSet) -> None:
        super().__init__(state, name=name, condition=owner._condition)
        self._owner = owner

    async def turn_to(self, __state: bool) -> None:
        async with self._condition:
            old, new = self._state, bool(__state)
            self._state = new
            if old != new and self in self._owner._toggles:
                self._owner._count(old, -1)
                self._owner._count(new, +1)
                self._owner._settle()
            self._condition.notify_all()  # waiters on this one toggle (kopf's own use)


class FastToggleSet(_KopfToggleSet):
    def __init__(self, fn: Callable[[Iterable[bool]], bool]) -> None:
        super().__init__(fn)
        self._counts = {True: 0, False: 0}
        self._events: dict[bool, asyncio.Event] = {}

    def _count(self, state: bool, delta: int) -> None:
        self._counts[state] += delta

    def is_on(self) -> bool:
        if self._fn is all:
            return self._counts[False] == 0
        if self._fn is any:
            return self._counts[True] > 0
        return super().is_on()

    def _settle(self) -> None:
        """After a change (held: the condition): wake whoever waits for the state it is now."""
        event = self._events.pop(self.is_on(), None)
        if event is not None:
            event.set()

    async def wait_for(self, __state: bool) -> None:
        wanted = bool(__state)
        while True:
            async with self._condition:
                if self.is_on() == wanted:
                    return
                event = self._events.get(wanted)
                if event is None:
                    event = self._events[wanted] = asyncio.Event()
            await event.wait()

    async def make_toggle(self, __val: bool = False, *, name: str | None = None) -> Any:
        toggle = _CountedToggle(bool(__val), name=name, owner=self)
        async with self._condition:
            self._toggles.add(toggle)
            self._count(toggle.is_on(), +1)
            self._settle()
            self._condition.notify_all()
        return toggle

    async def drop_toggle(self, toggle: aiotoggles.Toggle) -> None:
        async with self._condition:
            self._drop(toggle)
            self._settle()
            self._condition.notify_all()

    async def drop_toggles(self, toggles: Iterable[aiotoggles.Toggle]) -> None:
        async with self._condition:
            for toggle in list(toggles):
                self._drop(toggle)
            self._settle()
            self._condition.notify_all()

    def _drop(self, toggle: aiotoggles.Toggle) -> None:
        if toggle in self._toggles:
            self._toggles.discard(toggle)
            self._count(toggle.is_on(), -1)


def install() -> None:
    """Make kopf build its toggle sets from :class:`FastToggleSet` (idempotent)."""
    aiotoggles.ToggleSet = FastToggleSet  # type: ignore[misc]
