"""An in-memory traffic router: the weight as a number, for the simulator and engine tests."""

from __future__ import annotations

from rollouts.engine.plan import ManagedRoutes
from rollouts.routing.errors import RoutingError


class MemoryRouter:
    def __init__(self) -> None:
        self.weight: int | None = 0
        self.history: list[int] = []
        self.verified: bool | None = True
        self.error: str | None = None
        """When set, every call fails with this RoutingError, as a routing object missing a route
        would: the simulator and tests break the router without a cluster."""
        self.write_error: str | None = None
        """When set, only writes (``set_weight``, ``set_managed_routes``) fail (the object broke
        between the read and the write)."""
        self.routes = ManagedRoutes()
        self.route_history: list[ManagedRoutes] = []

    def _check(self) -> None:
        if self.error is not None:
            raise RoutingError(self.error)

    def set_weight(self, canary: int) -> None:
        self._check()
        if self.write_error is not None:
            raise RoutingError(self.write_error)
        self.weight = canary
        self.history.append(canary)

    def get_weight(self) -> int | None:
        self._check()
        return self.weight

    def verify_weight(self) -> bool | None:
        self._check()
        return self.verified

    def set_managed_routes(self, routes: ManagedRoutes) -> None:
        self._check()
        if self.write_error is not None:
            raise RoutingError(self.write_error)
        if routes != self.routes:
            self.route_history.append(routes)
        self.routes = routes

    def remove_managed_routes(self) -> None:
        self._check()
        self.weight = 0
        self.set_managed_routes(ManagedRoutes())
