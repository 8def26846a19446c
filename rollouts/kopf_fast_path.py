"""Watch events of the kinds Sluice reads, handled beside kopf's per-event machinery.

kopf takes every watch event through its full processing: the object's memory, a ``Body`` view,
three loggers, error throttling, each index and event handler invoked through its handler
machinery (kwargs, context variables, outcome states), cause detection (deletion, finalizer,
diff-base) and a patch to apply. In a fleet-wide burst (``benchmarks/scale.py`` with py-spy)
that was some 40% of the controller's CPU, about 1.3 ms per event, with seven events per Rollout
step (the update, two status writes, the slot created and made ready, a Service, the route).
Yet all Sluice does with an event is keep a copy of the object and submit a reconcile; kopf is
needed only for what kopf owns: its finalizer on a Rollout and the deletion handler.

So for each kind given a :class:`Route`, kopf's event processor is wrapped (:func:`install`):
the route indexes the object; unless the route asks for kopf (``needs_kopf``: a Rollout being
deleted, or whose finalizer is missing or not ours to keep) the event then skips kopf's
processing; and the route's ``notify`` runs. What kopf's processing gave around that is kept:
kopf's watch streams (their errors, ``rollouts.watch_errors``), its pause with peering, one
event at a time per object, and its readiness gate: at start, ``notify`` waits until every
watched kind has been listed and indexed, as kopf's handlers do, so no reconcile reads a
half-filled index. A kind still needs one kopf handler (an index that keeps nothing), so that
kopf watches it and counts it in that gate.

Installed at import by ``rollouts.operator``; routes belong to one registry (two operators in one
process keep theirs apart). kopf is pinned to the minor version this was written against;
:func:`install` refuses a kopf whose processor has another signature.
"""

from __future__ import annotations

import inspect
import logging
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kopf._core.reactor import processing

log = logging.getLogger("sluice.operator")

Body = Mapping[str, Any]


def never(body: Body, event_type: str | None) -> bool:
    return False


@dataclass(frozen=True)
class Route:
    """What an event of one kind does: ``index`` it (before the readiness gate: the gate waits
    for it), then ``notify`` (after the gate); ``needs_kopf`` sends it through kopf as well."""

    index: Callable[[Body, bool], None]
    notify: Callable[[Body, str | None], None]
    needs_kopf: Callable[[Body, str | None], bool] = never


_routes: weakref.WeakKeyDictionary[Any, dict[tuple[str, str], Route]] = weakref.WeakKeyDictionary()
_ORIGINAL = "_sluice_original"
_EXPECTED = {"registry", "resource", "raw_event", "resource_indexed", "operator_indexed"}


def route(registry: Any, group: str, plural: str, handling: Route) -> None:
    """Events of ``group``/``plural`` for the operator running ``registry`` go by ``handling``."""
    _routes.setdefault(registry, {})[(group, plural)] = handling


async def _process(**kwargs: Any) -> str | None:
    original = getattr(_process, _ORIGINAL)
    routes = _routes.get(kwargs["registry"])
    resource = kwargs["resource"]
    handling = None if routes is None else routes.get((resource.group, resource.plural))
    if handling is None:
        result: str | None = await original(**kwargs)
        return result
    raw_event = kwargs["raw_event"]
    body, event_type = raw_event["object"], raw_event.get("type")
    try:
        handling.index(body, event_type == "DELETED")
        via_kopf = handling.needs_kopf(body, event_type)
    except Exception:  # a malformed object must not end kopf's watcher (and the operator)
        log.exception("indexing a %s failed; left as it was", resource.plural)
        via_kopf = True
    version: str | None = None
    if via_kopf:
        version = await original(**kwargs)  # it passes the readiness gate itself
    else:
        gate, toggle = kwargs.get("operator_indexed"), kwargs.get("resource_indexed")
        if gate is not None and toggle is not None:
            await gate.drop_toggle(toggle)
        if gate is not None:
            await gate.wait_for(True)
    try:
        handling.notify(body, event_type)
    except Exception:
        log.exception("handling a %s event failed", resource.plural)
    return version


def install() -> None:
    """Wrap kopf's event processor (read from its module when kopf starts an operator)."""
    current = processing.process_resource_event
    if getattr(current, _ORIGINAL, None) is not None:
        return
    missing = _EXPECTED - set(inspect.signature(current).parameters)
    if missing:
        raise RuntimeError(f"kopf's event processor lacks {sorted(missing)}: kopf changed")
    setattr(_process, _ORIGINAL, current)
    processing.process_resource_event = _process  # type: ignore[assignment]
