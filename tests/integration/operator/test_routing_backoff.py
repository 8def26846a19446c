"""The operator retries a Rollout whose traffic router fails with a growing delay: a stuck
Rollout costs the API server a few reads, not one per poll interval, until a person fixes it."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from rollouts.settings import Settings
from tests.support.kube import create_rollout

from .conftest import OperatorHarness, canary, fast_settings, healthy
from .test_routing_errors import API_ROUTE, ISTIO, PRIMARY, STEPS, create_vs, set_routes
from .test_routing_errors import stalled as routing_stalled

pytestmark = pytest.mark.integration

POLL = 0.2  # without backoff the timer would look every POLL seconds


@pytest.fixture()
def operator_settings() -> Settings:
    return fast_settings(
        tick_seconds=0.1,
        min_requeue_seconds=POLL,
        max_requeue_seconds=POLL,
        idle_seconds=POLL,
        router_retry_max_seconds=30.0,
    )


def retries(h: OperatorHarness) -> int:
    """Reconciles of the Rollout (each one tries the router; it reads the VirtualService from the
    operator's watch cache, so they are counted as reconciles, not as GETs)."""
    return int(h.reconcile_count())


async def test_retries_slow_down_while_the_route_is_missing(harness: OperatorHarness) -> None:
    h = harness
    create_vs(h, [API_ROUTE])
    create_rollout(h.api, canary(steps=STEPS, router=ISTIO))
    await h.wait_status(lambda s: routing_stalled(s) is not None, what="Stalled/RoutingError")
    start, before = time.monotonic(), retries(h)
    await asyncio.sleep(6.0)
    elapsed, reads = time.monotonic() - start, retries(h) - before
    # retries at most 0.2, 0.6, 1.4, 3.0 and 6.2 s after the first failure (a slower machine only
    # makes fewer), where polling every POLL seconds would read it about 30 times (10 to 15 with
    # the emulator's own slowness)
    assert 1 <= reads <= 6, (reads, elapsed)

    set_routes(h, [API_ROUTE, PRIMARY])
    st: dict[str, Any] = await h.wait_status(healthy, timeout=20, what="Healthy after the fix")
    assert routing_stalled(st) is None
