"""Header and mirror routes through the simulator: the engine asks the router for them step by
step, and abort and promotion take them away."""

from __future__ import annotations

from pathlib import Path

from rollouts.cli.simulate import load_rollout
from rollouts.engine.plan import HeaderMatch, ManagedRoutes
from rollouts.simulator.simulation import SimOptions, Simulation

EXAMPLE = Path(__file__).parents[4] / "deploy" / "examples" / "canary-header-mirror.yaml"
HEADERS = (
    HeaderMatch("x-canary", "always"),
    HeaderMatch("cookie", r"^(.*?;\s*)?canary=always(;.*)?$", "regex", cookie="canary"),
)


def test_routes_follow_the_steps_and_promotion_leaves_none() -> None:
    sim = Simulation(load_rollout(EXAMPLE), SimOptions(set_image="checkout:2", promote=True))
    result = sim.run()
    assert result.rollout.status is not None and result.rollout.status.phase == "Healthy"
    # steps 6 and 7 (header route off, mirror off) complete in one reconcile: one change
    assert sim.router.route_history == [
        ManagedRoutes(headers=HEADERS),
        ManagedRoutes(headers=HEADERS, mirror=20),
        ManagedRoutes(),
    ]
    assert sim.router.routes == ManagedRoutes()


def test_abort_removes_the_routes_before_the_canary_goes() -> None:
    sim = Simulation(
        load_rollout(EXAMPLE), SimOptions(set_image="checkout:2", promote=True, abort_at=5)
    )
    result = sim.run()
    assert result.rollout.status is not None and result.rollout.status.phase == "Degraded"
    assert sim.router.route_history[-2:] == [
        ManagedRoutes(headers=HEADERS, mirror=20),
        ManagedRoutes(),
    ]
    assert sim.router.routes == ManagedRoutes()


def test_a_route_removed_behind_sluices_back_comes_back() -> None:
    """Drift: every reconcile asserts the wanted routes, not only the step that added them."""
    opts = SimOptions(set_image="checkout:2")  # stops at the first pause, waiting for a person
    sim = Simulation(load_rollout(EXAMPLE), opts)
    sim.run()
    assert sim.router.routes == ManagedRoutes(headers=HEADERS)
    sim.router.routes = ManagedRoutes()  # a GitOps sync wipes the header route
    sim.step(None)  # the next reconcile (the operator reacts to the routing object's change)
    assert sim.router.routes == ManagedRoutes(headers=HEADERS)
