"""The TrafficRouter port: how the canary weight reaches a mesh or ingress.

Routers own only their weights; everything else in the user's routing objects stays the user's.
The engine never trusts its own memory of a weight: it reads ``get_weight`` on every reconcile and
calls ``set_weight`` whenever the object disagrees, so a hand edit or a GitOps sync that reverts
a weight mid-rollout is undone on the next reconcile. Implementations: ``istio``, ``gateway_api``,
``smi`` and ``nginx`` (``factory.router_for`` picks one); ``memory`` for the simulator.
"""

from __future__ import annotations

from typing import Protocol

from rollouts.engine.plan import ManagedRoutes


class TrafficRouter(Protocol):
    def set_weight(self, canary: int) -> None:
        """Send ``canary`` percent to the canary Service and the rest to the stable one.

        Idempotent (no write when the object already holds the weights). Raises
        ``rollouts.routing.errors.RoutingError`` when the routing object is missing or cannot
        carry the split (its message names the object and field, for status and events); API
        errors propagate as ``kubernetes`` ``ApiException`` for the caller's retry.
        """
        ...

    def get_weight(self) -> int | None:
        """The canary weight the routing object holds now.

        None when it holds no consistent split (routes that disagree, weights not summing to 100):
        the engine then sets the weight again, which repairs it. Raises ``RoutingError`` when the
        object or a managed route is missing or cannot carry the split (what ``set_weight`` would
        raise), so the engine learns before deciding that it must hold the traffic as it is.
        """
        ...

    def verify_weight(self) -> bool | None:
        """Whether the data plane applies the weight (None: this router cannot tell)."""
        ...

    def set_managed_routes(self, routes: ManagedRoutes) -> None:
        """Make the header and mirror routes Sluice owns in the routing object exactly ``routes``
        (none: remove them). Only routes Sluice created (named and marked as its own) are
        touched, with the same guarded patches as weights; idempotent. Raises ``RoutingError``
        when this router cannot carry them."""
        ...

    def remove_managed_routes(self) -> None:
        """Undo what Sluice added (the NGINX canary Ingress, header and mirror routes) when a
        Rollout goes away.

        Weights in user-owned objects are not reset here: call ``set_weight(0)`` first to send
        everything to stable. Objects Sluice did not create are never deleted.
        """
        ...
