"""The gate probe: asks a gate's URL whether it is open, at most when due, and remembers.

The engine never does IO (``rollouts.engine.gates``); the reconcile asks this port about the
gate the Rollout waits on and passes the answer in ``Observed.gate``. Flagger's confirm-promotion
semantics: HTTP 200 is open; any other status, a timeout, a refused connection or a bad URL is
closed (a gate never opens by failing).

Asking must not hold the reconcile thread: one request per due time per Rollout, with the gate's
short timeout (at most 10 s, enforced by the API), and the answer cached per Rollout and URL
until the next check is due. While the gate stays closed the wait doubles from ``interval`` up to
4 x ``interval`` (at most 5 minutes), so a gate left closed over a weekend costs a request every
few minutes, not every reconcile. An open answer is cached for one ``interval`` too.

Two implementations: :class:`HttpGateProbe` (the controller's, real HTTP) and
:class:`ScriptedGateProbe` (the simulator's and engine tests': open from a scripted time).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import requests

from rollouts.api.base import parse_duration
from rollouts.api.rollout import Gate, Rollout
from rollouts.engine.plan import GateObservation

MAX_BACKOFF = 300.0
"""Seconds between checks of a closed gate at most."""
KEEP = 4096
"""Rollout gates remembered at most (least recently asked forgotten first)."""


class GateProbe(Protocol):
    """Answers whether ``gate`` of ``rollout`` is open, asking its URL only when due."""

    def observe(self, rollout: Rollout, gate: Gate) -> GateObservation: ...


def next_wait(interval: float, closed_in_a_row: int) -> float:
    """Seconds until the next check: ``interval`` doubled per closed answer in a row beyond the
    first, at most 4 x ``interval`` and ``MAX_BACKOFF``."""
    if closed_in_a_row <= 1:
        return interval
    doubled: float = interval * 2.0 ** (closed_in_a_row - 1)
    return min(doubled, 4 * interval, max(MAX_BACKOFF, interval))


@dataclass
class _Entry:
    observation: GateObservation
    closed_in_a_row: int


def _at(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


class _Cached:
    """The caching and backoff both probes share; subclasses say what one check answers."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._entries: OrderedDict[tuple[str, str, str], _Entry] = OrderedDict()
        self._lock = threading.Lock()  # reconciles of different Rollouts run in threads
        self.checks = 0
        """Requests made (for tests: the cache must keep them bounded)."""

    def check(self, gate: Gate) -> tuple[bool, str]:
        raise NotImplementedError

    def observe(self, rollout: Rollout, gate: Gate) -> GateObservation:
        key = (rollout.metadata.namespace, rollout.metadata.name, gate.url)
        now = self.clock()
        with self._lock:
            entry = self._entries.get(key)
            due = entry.observation.next_check_at if entry is not None else None
            if entry is not None and due is not None and now < due.timestamp():
                self._entries.move_to_end(key)
                return entry.observation
            self.checks += 1
        # asked outside the lock: one Rollout's slow gate never delays another's reconcile
        is_open, answer = self.check(gate)
        closed = 0 if is_open else (entry.closed_in_a_row if entry else 0) + 1
        wait = next_wait(float(parse_duration(gate.interval)), max(closed, 1))
        observation = GateObservation(gate.url, is_open, answer, _at(now), _at(now + wait))
        with self._lock:
            self._entries[key] = _Entry(observation, closed)
            self._entries.move_to_end(key)
            while len(self._entries) > KEEP:
                self._entries.popitem(last=False)
        return observation


class HttpGateProbe(_Cached):
    """Real HTTP GETs, no redirects followed (a redirect is not a 200)."""

    def check(self, gate: Gate) -> tuple[bool, str]:
        timeout = parse_duration(gate.timeout)
        try:
            # a session per check: reconciles run in threads, and a check is seconds apart
            with (
                requests.Session() as session,
                session.get(
                    gate.url,
                    headers={h.name: h.value for h in gate.headers},
                    timeout=float(timeout),
                    allow_redirects=False,
                    stream=True,
                ) as answer,
            ):
                status = answer.status_code
        except requests.Timeout:
            return False, f"timeout after {timeout}s"
        except requests.ConnectionError:
            return False, "connection failed"
        except requests.RequestException as e:
            return False, f"{type(e).__name__}"
        return status == 200, f"HTTP {status}"


class ScriptedGateProbe(_Cached):
    """Gates that open at scripted times (seconds on ``clock``); a URL not scripted stays closed."""

    def __init__(self, opens_at: Mapping[str, float], clock: Callable[[], float]) -> None:
        super().__init__(clock)
        self.opens_at = dict(opens_at)

    def check(self, gate: Gate) -> tuple[bool, str]:
        at = self.opens_at.get(gate.url)
        if at is not None and self.clock() >= at:
            return True, "HTTP 200"
        return False, "HTTP 403"


__all__ = ["GateProbe", "HttpGateProbe", "ScriptedGateProbe", "next_wait"]
