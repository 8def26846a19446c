"""A traffic router that cannot read or write its object holds the Rollout where it is.

A VirtualService without the named route, a deleted HTTPRoute, an Ingress name taken by someone
else: only a person can fix these, and until then no plan is safe. Moving on would shift traffic
the router cannot shift (a step counted done at a weight never set, a promotion with the canary at
0%), and scaling down or aborting could remove pods that the route still sends traffic to. So the
engine plans nothing but a Warning Event, keeps the last status as it was (step, weights, analysis
records, scale-downs, requests still waiting in their annotation) and reports it the way kstatus
and Argo CD read a problem that needs a person: ``Stalled=True`` with reason ``RoutingError`` and
phase ``Degraded``, the message naming the object and the route. The operator retries with a
growing delay; the first reconcile that reads the router again decides as usual from the same
status and says so with a Normal Event.
"""

from __future__ import annotations

from datetime import datetime

from rollouts.api.rollout import Condition, Rollout, RolloutStatus
from rollouts.engine.conditions import summarize
from rollouts.engine.plan import EmitEvent, Plan

REASON = "RoutingError"
RECOVERED = "RoutingRecovered"


def _stalled(status: RolloutStatus | None) -> Condition | None:
    for c in status.conditions if status is not None else []:
        if c.type == "Stalled" and c.status == "True" and c.reason == REASON:
            return c
    return None


def stalled_on_router(status: RolloutStatus | None) -> bool:
    """Whether this status reports a broken traffic router (the operator backs off on it)."""
    return _stalled(status) is not None


def stall_message(error: str) -> str:
    return f"traffic router failed: {error}; traffic left as it was, retrying"


def hold(rollout: Rollout, error: str, now: datetime) -> Plan:
    """The last status, re-summarized as Stalled; an Event only when the problem is new."""
    st = (rollout.status or RolloutStatus()).model_copy(deep=True)
    generation = rollout.metadata.generation
    st.observed_generation = generation
    message = stall_message(error)
    before = _stalled(st)
    news = before is None or before.message != message
    summarize(
        st,
        stable_ready=False,
        in_flight=False,
        now=now,
        generation=generation,
        stall=(REASON, message),
    )
    actions = (EmitEvent("Warning", REASON, error),) if news else ()
    return Plan(status=st, actions=actions)


def recovery_event(before: RolloutStatus | None) -> EmitEvent | None:
    """A Normal Event when the router works again after a stall, so the Events tell the story."""
    if not stalled_on_router(before):
        return None
    return EmitEvent("Normal", RECOVERED, "traffic router works again; rollout continues")
