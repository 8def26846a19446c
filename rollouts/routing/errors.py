"""What a traffic router's failure looks like to a reconcile.

``RoutingError`` lives here, apart from the Kubernetes routers, so the in-memory router (and so the
simulator) can raise it without loading the ``kubernetes`` client. ``read_router`` turns a failed
read into an observation: the engine, not the caller, decides what a broken router means for the
Rollout (it holds the traffic as it was and reports ``Stalled``; ``rollouts.engine.routing_hold``).
"""

from __future__ import annotations

from dataclasses import dataclass

from rollouts.routing.port import TrafficRouter


class RoutingError(Exception):
    """The routing object cannot carry the split as configured (missing, or lacking a route).

    Raised for problems only a person can fix, so the message names the object and the field; the
    operator reports it on the Rollout and retries later rather than guessing a repair.
    """


@dataclass(frozen=True)
class RouterReading:
    """The router's weights as read before deciding, or why they could not be read."""

    weight: int | None = None
    verified: bool | None = None
    error: str | None = None


def read_router(router: TrafficRouter | None) -> RouterReading:
    """Read the weight and its verification; a ``RoutingError`` becomes ``error`` (API errors
    still propagate: they are the operator's to retry, not the user's to fix)."""
    if router is None:
        return RouterReading()
    try:
        return RouterReading(weight=router.get_weight(), verified=router.verify_weight())
    except RoutingError as e:
        return RouterReading(error=str(e))
