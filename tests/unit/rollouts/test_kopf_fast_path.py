"""Routed watch events skip kopf's processing, keep its readiness gate, and reach kopf when asked.

kopf's own processor is replaced here by a recorder (the wrapped original is our module's
attribute): the real one runs in the operator's integration tests, where Rollouts are finalized
and deleted through it (tests/integration/operator/test_lifecycle.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import kopf
import pytest
from kopf._cogs.structs.references import Resource
from kopf._core.reactor import processing

from rollouts import kopf_fast_path
from rollouts.kopf_toggles import FastToggleSet

ROLLOUTS = Resource("sluice.dev", "v1alpha1", "rollouts")
SERVICES = Resource("", "v1", "services")


@pytest.fixture
def kopf_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """kopf's processor as a recorder of what reached it."""
    kopf_fast_path.install()
    calls: list[dict[str, Any]] = []

    async def original(**kwargs: Any) -> str | None:
        calls.append(kwargs)
        return "42"

    monkeypatch.setattr(kopf_fast_path._process, "_sluice_original", original)
    yield calls


def event(type_: str | None, name: str = "a", **meta: Any) -> dict[str, Any]:
    return {"type": type_, "object": {"metadata": {"namespace": "ns", "name": name, **meta}}}


class Seen:
    def __init__(self, needs_kopf: bool = False) -> None:
        self.log: list[tuple[str, str, Any]] = []
        self._needs_kopf = needs_kopf

    def route(self) -> kopf_fast_path.Route:
        return kopf_fast_path.Route(
            index=lambda body, deleted: self.log.append(
                ("index", body["metadata"]["name"], deleted)
            ),
            notify=lambda body, t: self.log.append(("notify", body["metadata"]["name"], t)),
            needs_kopf=lambda body, t: self._needs_kopf,
        )


async def process(registry: Any, resource: Resource, raw: dict[str, Any], **kw: Any) -> Any:
    return await processing.process_resource_event(  # type: ignore[call-arg]
        registry=registry, resource=resource, raw_event=raw, **kw
    )


def test_a_routed_event_is_indexed_then_notified_without_kopf(kopf_calls: list[Any]) -> None:
    registry, seen = kopf.OperatorRegistry(), Seen()
    kopf_fast_path.route(registry, "", "services", seen.route())
    result = asyncio.run(process(registry, SERVICES, event("MODIFIED")))
    assert seen.log == [("index", "a", False), ("notify", "a", "MODIFIED")]
    assert kopf_calls == [] and result is None


def test_a_deletion_is_indexed_as_one(kopf_calls: list[Any]) -> None:
    registry, seen = kopf.OperatorRegistry(), Seen()
    kopf_fast_path.route(registry, "", "services", seen.route())
    asyncio.run(process(registry, SERVICES, event("DELETED")))
    assert seen.log == [("index", "a", True), ("notify", "a", "DELETED")]


def test_an_event_the_route_asks_kopf_for_goes_through_kopf_too(kopf_calls: list[Any]) -> None:
    registry, seen = kopf.OperatorRegistry(), Seen(needs_kopf=True)
    kopf_fast_path.route(registry, "sluice.dev", "rollouts", seen.route())
    raw = event("MODIFIED", deletionTimestamp="2026-12-03T00:00:00Z")
    result = asyncio.run(process(registry, ROLLOUTS, raw))
    assert [c["raw_event"] for c in kopf_calls] == [raw]
    assert seen.log == [("index", "a", False), ("notify", "a", "MODIFIED")]
    assert result == "42"  # kopf's patched version goes back to its worker


def test_kinds_and_operators_without_a_route_are_kopfs(kopf_calls: list[Any]) -> None:
    routed, other, seen = kopf.OperatorRegistry(), kopf.OperatorRegistry(), Seen()
    kopf_fast_path.route(routed, "", "services", seen.route())
    asyncio.run(process(routed, ROLLOUTS, event("MODIFIED", "r")))
    asyncio.run(process(other, SERVICES, event("MODIFIED", "s")))
    assert [c["raw_event"]["object"]["metadata"]["name"] for c in kopf_calls] == ["r", "s"]
    assert seen.log == []


def test_notices_wait_for_every_kind_to_be_listed_and_the_index_releases_its_hold(
    kopf_calls: list[Any],
) -> None:
    """At start kopf holds an object's handlers until every watched kind is listed: a notice
    before then would reconcile from a half-filled index."""

    async def main() -> None:
        registry, seen = kopf.OperatorRegistry(), Seen()
        kopf_fast_path.route(registry, "", "services", seen.route())
        gate = FastToggleSet(all)
        other_kind = await gate.make_toggle(False, name="deployments listed")
        this_object = await gate.make_toggle(False, name="this service indexed")
        task = asyncio.create_task(
            process(
                registry,
                SERVICES,
                event(None),
                operator_indexed=gate,
                resource_indexed=this_object,
            )
        )
        for _ in range(20):
            await asyncio.sleep(0)
        assert seen.log == [("index", "a", False)]  # indexed, not yet notified
        assert this_object not in list(gate)  # its hold on the gate is released
        await other_kind.turn_to(True)
        await asyncio.wait_for(task, 5)
        assert seen.log[-1] == ("notify", "a", None)

    asyncio.run(main())


def test_a_failing_notice_is_logged_and_the_watch_goes_on(
    kopf_calls: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    registry = kopf.OperatorRegistry()

    def boom(body: Any, t: Any) -> None:
        raise ValueError("bad object")

    kopf_fast_path.route(
        registry, "", "services", kopf_fast_path.Route(index=lambda b, d: None, notify=boom)
    )
    with caplog.at_level(logging.ERROR, logger="sluice.operator"):
        assert asyncio.run(process(registry, SERVICES, event("MODIFIED"))) is None
    assert "handling a services event failed" in caplog.text
    assert "bad object" in caplog.text


def test_a_failing_index_sends_the_event_through_kopf(kopf_calls: list[Any]) -> None:
    """kopf then handles it as before the fast path (its own error throttling)."""
    registry, notified = kopf.OperatorRegistry(), []

    def boom(body: Any, deleted: bool) -> None:
        raise TypeError("metadata is a string")

    kopf_fast_path.route(
        registry,
        "",
        "services",
        kopf_fast_path.Route(index=boom, notify=lambda b, t: notified.append(t)),
    )
    asyncio.run(process(registry, SERVICES, event("MODIFIED")))
    assert len(kopf_calls) == 1 and notified == ["MODIFIED"]


def test_install_is_idempotent_and_wraps_kopfs_processor() -> None:
    kopf_fast_path.install()
    first = processing.process_resource_event
    kopf_fast_path.install()
    assert processing.process_resource_event is first
    assert first._sluice_original.__module__ == "kopf._core.reactor.processing"
