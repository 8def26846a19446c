"""A real kopf operator (``rollouts.operator.run``) in the test's event loop, against the emulator.

Shared by test_lifecycle.py (helper E) and test_operations.py / test_api_errors.py (helper F).
The emulator runs in its own thread (tests/support/kube.py), so the test body may call the
synchronous ``kubernetes`` client directly; wait for the operator with ``await harness.wait_for``.

Rollouts: ``canary(...)`` builds one (canary or, with ``blue_green=``, blue-green) and
``healthy(status)`` says it has settled; shared by every operator test file.

Fixtures:
- ``operator_settings``: fast timers, standalone, no metrics/liveness ports (override to change);
- ``harness``: an ``OperatorHarness`` whose operator is already running (``await harness.restart()``
  to simulate a controller restart; ``harness.auto_ready = False`` to set readiness by hand).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import kubernetes
import pytest

from rollouts.operator import Controller, run
from rollouts.settings import Settings
from rollouts.telemetry import Telemetry
from rollouts.verdicts.port import VerdictSource
from tests.support import kube as k8s
from tests.support.kube import (
    RunningEmulator,
    create_service,
    events_for,
    get_deployment,
    get_rollout,
    get_service,
    list_json,
    patch_rollout,
    ready_slots,
)
from tests.support.patience import patience
from tests.support.rollouts import rollout_doc

# the emulator fixtures, defined once in tests/support/kube.py
kube_emulator = k8s.kube_emulator
kubeconfig = k8s.kubeconfig
api_client = k8s.api_client
namespace = k8s.namespace

T = TypeVar("T")


@dataclass
class OperatorHarness:
    api: kubernetes.client.ApiClient
    emulator: RunningEmulator
    settings: Settings
    namespace: str = "ns"
    verdicts: VerdictSource | None = None
    telemetry: Telemetry = field(default_factory=Telemetry)
    auto_ready: bool = True
    """Play the Deployment controller: keep every slot Deployment's pods ready."""
    hold: set[str] = field(default_factory=set)
    """Slot Deployments (by name) auto_ready leaves alone."""
    task: asyncio.Task[None] | None = None
    controller: Controller | None = None
    """The running operator's Controller (its per-Rollout state, for memory checks)."""
    _ready_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ operator lifecycle
    async def start(self) -> None:
        assert self.task is None
        ready = asyncio.Event()
        self.task = asyncio.create_task(
            run(
                self.settings,
                api=self.api,
                telemetry=self.telemetry,
                verdicts=self.verdicts,
                ready_flag=ready,
                on_controller=lambda c: setattr(self, "controller", c),
            )
        )
        if self._ready_task is None:
            self._ready_task = asyncio.create_task(self._keep_ready())
        # kopf sets the flag once its watches run; the first reconcile follows within a tick
        started = asyncio.create_task(ready.wait())
        await asyncio.wait(
            {started, self.task}, timeout=patience(10), return_when="FIRST_COMPLETED"
        )
        if not started.done():
            started.cancel()
            if self.task.done():
                self.task.result()  # the operator failed to start: say why
            raise AssertionError("the operator did not become ready")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
            self.task = None

    async def restart(self) -> None:
        """A controller restart: a new operator with fresh memory, resuming from status."""
        await self.stop()
        self.telemetry = Telemetry()
        await self.start()

    async def close(self) -> None:
        await self.stop()
        if self._ready_task is not None:
            self._ready_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ready_task

    async def _keep_ready(self) -> None:
        while True:
            if self.auto_ready:
                with contextlib.suppress(Exception):
                    for rollout in self.rollout_names():
                        ready_slots(
                            self.api,
                            self.namespace,
                            rollout,
                            lambda d: d["metadata"]["name"] not in self.hold,
                        )
            await asyncio.sleep(0.05)

    # ---------------------------------------------------------------------------- reading
    def rollout_names(self) -> list[str]:
        items = list_json(
            self.api, f"/apis/sluice.dev/v1alpha1/namespaces/{self.namespace}/rollouts"
        )
        return [i["metadata"]["name"] for i in items]

    def rollout(self, name: str = "web") -> dict[str, Any]:
        return get_rollout(self.api, self.namespace, name)

    def status(self, name: str = "web") -> dict[str, Any]:
        return dict(self.rollout(name).get("status") or {})

    def deployment(self, name: str) -> dict[str, Any] | None:
        return get_deployment(self.api, self.namespace, name)

    def selector(self, service: str) -> dict[str, str]:
        svc = get_service(self.api, self.namespace, service)
        assert svc is not None, service
        return dict(svc["spec"].get("selector") or {})

    def events(self, name: str = "web") -> list[dict[str, Any]]:
        return events_for(self.api, self.namespace, name)

    def reasons(self, name: str = "web") -> list[str]:
        return [e["reason"] for e in self.events(name)]

    async def wait_for(
        self, check: Callable[[], T], timeout: float = 10.0, what: str = "condition"
    ) -> T:
        """Poll ``check`` (exceptions count as not yet) until it returns something truthy.

        ``timeout`` is stretched by :func:`tests.support.patience.patience` for loaded machines."""
        timeout = patience(timeout)
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = check()
            except (AssertionError, KeyError, IndexError, TypeError) as e:
                last = e
            else:
                if last:
                    return last
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")

    def reconcile_count(self) -> float:
        """Reconciles this operator has finished (its duration histogram's count)."""
        name = "sluice_reconcile_duration_seconds_count"
        return self.telemetry.registry.get_sample_value(name) or 0.0

    async def reconciles(self, times: int = 3) -> None:
        """Wait until the operator has reconciled ``times`` more times.

        "Nothing changes" is shown by reconciles that left it alone, not by a span of wall-clock
        time: on a loaded machine a second may hold no reconcile at all. A settled Rollout is
        not reconciled by itself any more (its drift re-check is skipped while nothing it reads
        changed), so each Rollout is submitted as a due time would submit it, until done."""
        start = self.reconcile_count()

        def done() -> bool:
            if self.reconcile_count() >= start + times:
                return True
            if self.controller is not None:
                for name in self.rollout_names():
                    self.controller.trigger(self.namespace, name, timed=True)
            return False

        await self.wait_for(done, what=f"{times} more reconciles")

    async def wait_status(
        self,
        predicate: Callable[[dict[str, Any]], bool],
        name: str = "web",
        timeout: float = 10.0,
        what: str = "",
    ) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            st = self.status(name)
            return st if predicate(st) else None

        try:
            return await self.wait_for(check, timeout, what or "status")
        except AssertionError as e:
            raise AssertionError(f"{e}\nstatus now: {self.status(name)}") from None

    # ---------------------------------------------------------------------------- writing
    def request(self, kind: str, rid: str, name: str = "web") -> None:
        """What ``kubectl annotate rollout web sluice.dev/request=<kind>@<id>`` does."""
        patch_rollout(
            self.api,
            self.namespace,
            name,
            {"metadata": {"annotations": {"sluice.dev/request": f"{kind}@{rid}"}}},
        )

    def set_image(self, image: str, name: str = "web") -> None:
        doc = self.rollout(name)
        template = doc["spec"]["template"]
        template["spec"]["containers"][0]["image"] = image
        patch_rollout(self.api, self.namespace, name, {"spec": {"template": template}})


# ------------------------------------------------------------------------------ replicas
WRITES = {"POST", "PATCH", "PUT", "DELETE"}


def writes_by(h: OperatorHarness, agent: str, since: int = 0) -> list[str]:
    """Sluice's writes made through the client named ``agent`` (its User-Agent), from the
    emulator's ``since``-th recorded call on; Deployment status writes (the test playing the
    Deployment controller) and kopf's peering heartbeats aside."""
    calls = list(h.emulator.emulator.calls)
    return [str(calls[i]) for i in write_positions(h, agent, calls) if i >= since]


def write_positions(h: OperatorHarness, agent: str, calls: list[Any] | None = None) -> list[int]:
    """Where in the emulator's record of calls ``agent``'s writes (as ``writes_by`` counts them)
    are: two replicas that never work at once have no positions interleaved."""
    from rollouts.peering import CLUSTER_PEERINGS

    return [
        i
        for i, c in enumerate(list(h.emulator.emulator.calls) if calls is None else calls)
        if c.agent == agent
        and c.method in WRITES
        and not (c.plural == "deployments" and c.subresource == "status")
        and c.plural != CLUSTER_PEERINGS
    ]


# ------------------------------------------------------------------------------ Rollouts

CANARY_STEPS: list[dict[str, Any]] = [
    {"setWeight": 25},
    {"pause": {"duration": "1s"}},
    {"setWeight": 75},
    {"pause": {}},  # waits for a person
]


def canary(
    name: str = "web", steps: list[dict[str, Any]] | None = None, **kw: Any
) -> dict[str, Any]:
    """A Rollout named ``name`` over the Services ``name`` and ``name-canary`` (see ``services``),
    with no scale-down delays so tests see old slots go at once."""
    doc = rollout_doc(steps=CANARY_STEPS if steps is None else steps, replicas=4, **kw)
    doc["metadata"]["name"] = name
    strategy = doc["spec"]["strategy"]
    if "canary" in strategy:
        c = strategy["canary"]
        c["stableService"], c["canaryService"] = name, f"{name}-canary"
        c["scaleDownDelaySeconds"] = 0
        c["abortScaleDownDelaySeconds"] = 0
    for key in ("selector",):
        doc["spec"][key] = {"matchLabels": {"app": name}}
    doc["spec"]["template"]["metadata"]["labels"] = {"app": name}
    return doc


def healthy(st: dict[str, Any]) -> bool:
    """Settled: Healthy with nothing in flight (the current revision is the stable one)."""
    return st.get("phase") == "Healthy" and st.get("currentRevision") == st.get("stableRevision")


FAST_SETTINGS: dict[str, Any] = {
    "standalone": True,
    "metrics_port": None,
    "liveness_port": None,
    "tick_seconds": 0.2,
    "min_requeue_seconds": 0.2,
    "max_requeue_seconds": 1.0,
    "idle_seconds": 2.0,
    "request_timeout": 5.0,
}


def fast_settings(**changes: Any) -> Settings:
    """The operator tests' settings (fast timers, standalone, no ports) with a test's changes:
    one place to read them, so a test's own fixture says only what it changes and why."""
    return Settings(**{**FAST_SETTINGS, **changes})


@pytest.fixture()
def operator_settings() -> Settings:
    return fast_settings()


@pytest.fixture()
def services(api_client: kubernetes.client.ApiClient, namespace: str) -> list[str]:
    """The user's Services for a canary (web, web-canary) and a blue-green (web-active, web-preview)."""
    names = ["web", "web-canary", "web-preview", "shop", "shop-canary"]
    for n in names:
        create_service(api_client, namespace, n, {"app": n.split("-")[0]})
    return names


@pytest.fixture()
async def harness(
    api_client: kubernetes.client.ApiClient,
    kube_emulator: RunningEmulator,
    operator_settings: Settings,
    namespace: str,
    services: list[str],
) -> AsyncIterator[OperatorHarness]:
    h = OperatorHarness(api_client, kube_emulator, operator_settings, namespace)
    await h.start()
    try:
        yield h
    finally:
        await h.close()
