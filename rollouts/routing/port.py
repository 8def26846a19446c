"""The TrafficRouter port: how the canary weight reaches a mesh or ingress.

Routers own only their weights; everything else in the user's routing objects stays the user's.
"""

from __future__ import annotations

from typing import Protocol


class TrafficRouter(Protocol):
    def set_weight(self, canary: int) -> None:
        """Send ``canary`` percent to the canary Service and the rest to the stable one."""
        ...

    def get_weight(self) -> int | None:
        """The canary weight the routing object holds now (None when it cannot be read)."""
        ...

    def verify_weight(self) -> bool | None:
        """Whether the data plane applies the weight (None: this router cannot tell)."""
        ...

    def remove_managed_routes(self) -> None:
        """Undo what Sluice added (canary Ingress, header routes) when a Rollout goes away."""
        ...
