"""An in-memory traffic router: the weight as a number, for the simulator and engine tests."""

from __future__ import annotations

from rollouts.engine.plan import ManagedRoutes


class MemoryRouter:
    def __init__(self) -> None:
        self.weight: int | None = 0
        self.history: list[int] = []
        self.verified: bool | None = True
        self.routes = ManagedRoutes()
        self.route_history: list[ManagedRoutes] = []

    def set_weight(self, canary: int) -> None:
        self.weight = canary
        self.history.append(canary)

    def get_weight(self) -> int | None:
        return self.weight

    def verify_weight(self) -> bool | None:
        return self.verified

    def set_managed_routes(self, routes: ManagedRoutes) -> None:
        if routes != self.routes:
            self.route_history.append(routes)
        self.routes = routes

    def remove_managed_routes(self) -> None:
        self.weight = 0
        self.set_managed_routes(ManagedRoutes())
