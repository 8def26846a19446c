"""A throwaway cluster for a reliability suite: the emulator, Services and router objects for
each Rollout, the Deployment player, and the real controller in its own process."""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes

from rollouts.settings import Settings
from tests.support.controller_process import ControllerProcess
from tests.support.deployment_player import DeploymentPlayer
from tests.support.kube import (
    RunningEmulator,
    SluiceEmulator,
    create_service,
    custom,
    get_json,
    list_json,
    register_resources,
    write_kubeconfig,
)

NAMESPACE = "ns"
CONTROLLER_HOST = "localhost"


def controller_request(request: Any) -> bool:
    """Whether the controller (not the suite) sent this request: it alone says ``localhost``."""
    host = str(request.headers.get("Host") or request.headers.get("host") or "")
    return host.split(":")[0] == CONTROLLER_HOST


SETTINGS = Settings(
    standalone=True,
    metrics_port=None,
    liveness_port=None,
    tick_seconds=0.2,
    min_requeue_seconds=0.2,
    max_requeue_seconds=1.0,
    idle_seconds=5.0,
    request_timeout=5.0,
)
"""Fast timers, as the operator tests use: suites wait for outcomes, so faster means shorter."""


class ShortMemoryEmulator(SluiceEmulator):
    """The emulator in its lean mode (``SluiceEmulator.lean``): kmock re-scans every request it
    has served to route each new one, which makes a suite of tens of thousands of requests
    quadratic; lean, it keeps only the requests in flight and counts calls in ``call_counts``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**{"lean": True, **kwargs})


def start_short_memory_emulator(emulator: ShortMemoryEmulator | None = None) -> RunningEmulator:
    emulator = ShortMemoryEmulator() if emulator is None else emulator
    register_resources(emulator)
    running = RunningEmulator(emulator)
    running.start()
    return running


@dataclass
class Cluster:
    emulator: RunningEmulator
    api: kubernetes.client.ApiClient
    controller: ControllerProcess
    player: DeploymentPlayer
    namespace: str = NAMESPACE

    # ------------------------------------------------------------------------------ objects
    def infrastructure(self, name: str) -> None:
        """What a Rollout named ``name`` refers to: its Services and router objects."""
        for service in (name, f"{name}-canary", f"{name}-preview"):
            create_service(self.api, self.namespace, service, {"app": name})
        routes = [
            {"destination": {"host": name}, "weight": 100},
            {"destination": {"host": f"{name}-canary"}, "weight": 0},
        ]
        custom(self.api).create_namespaced_custom_object(
            "networking.istio.io",
            "v1beta1",
            self.namespace,
            "virtualservices",
            {
                "apiVersion": "networking.istio.io/v1beta1",
                "kind": "VirtualService",
                "metadata": {"name": name},
                "spec": {"hosts": [name], "http": [{"name": "primary", "route": routes}]},
            },
        )
        refs = [
            {"name": name, "port": 80, "weight": 100},
            {"name": f"{name}-canary", "port": 80, "weight": 0},
        ]
        custom(self.api).create_namespaced_custom_object(
            "gateway.networking.k8s.io",
            "v1",
            self.namespace,
            "httproutes",
            {
                "apiVersion": "gateway.networking.k8s.io/v1",
                "kind": "HTTPRoute",
                "metadata": {"name": name},
                "spec": {"rules": [{"backendRefs": refs}]},
            },
        )

    def create(self, plural: str, doc: dict[str, Any]) -> None:
        doc = dict(doc)
        doc["metadata"] = {**doc["metadata"], "namespace": self.namespace}
        custom(self.api).create_namespaced_custom_object(
            "sluice.dev", "v1alpha1", self.namespace, plural, doc
        )

    def rollouts(self) -> dict[str, dict[str, Any]]:
        items = list_json(
            self.api, f"/apis/sluice.dev/v1alpha1/namespaces/{self.namespace}/rollouts"
        )
        return {i["metadata"]["name"]: i for i in items}

    def rollout(self, name: str) -> dict[str, Any] | None:
        return get_json(
            self.api, f"/apis/sluice.dev/v1alpha1/namespaces/{self.namespace}/rollouts/{name}"
        )

    def set_image(self, name: str, image: str) -> None:
        doc = self.rollout(name)
        assert doc is not None, name
        containers = doc["spec"]["template"]["spec"]["containers"]
        containers[0]["image"] = image
        custom(self.api).patch_namespaced_custom_object(
            "sluice.dev",
            "v1alpha1",
            self.namespace,
            "rollouts",
            name,
            {"spec": {"template": {"spec": {"containers": containers}}}},
        )

    def requests_served(self) -> int:
        return sum(self.emulator.emulator.call_counts.values())


@contextmanager
def cluster(
    settings: Settings = SETTINGS,
    emulator_type: type[ShortMemoryEmulator] = ShortMemoryEmulator,
    **changes: Any,
) -> Iterator[Cluster]:
    """A fresh emulator and controller process; stopped (SIGTERM) and torn down on exit."""
    settings = dataclasses.replace(settings, **changes)
    emulator = start_short_memory_emulator(emulator_type())
    with tempfile.TemporaryDirectory(prefix="sluice-reliability-") as tmp:
        # the controller calls the emulator by another host name than the suite does, so
        # injected faults can spare the suite's own calls (see ``controller_request``)
        kubeconfig = write_kubeconfig(
            Path(tmp) / "kubeconfig", emulator.url.replace("127.0.0.1", CONTROLLER_HOST)
        )
        suite_config = write_kubeconfig(Path(tmp) / "suite-kubeconfig", emulator.url)
        api = kubernetes.config.new_client_from_config(config_file=str(suite_config))
        api.configuration.proxy = None
        controller = ControllerProcess(kubeconfig, settings, Path(tmp))
        player = DeploymentPlayer(api, NAMESPACE).start()
        c = Cluster(emulator, api, controller, player)
        try:
            yield c
        finally:
            controller.stop()
            keep = os.environ.get("SLUICE_RELIABILITY_LOGS")
            if keep:
                Path(keep).mkdir(parents=True, exist_ok=True)
                for log in controller.logs:
                    shutil.copy(log, Path(keep) / f"{int(time.time())}-{log.name}")
            player.stop()
            api.close()
            emulator.stop()


def wait_all(check: Any, names: list[str], timeout: float, interval: float = 0.5) -> set[str]:
    """Poll until ``check(name)`` is true for every name, or the timeout; returns the laggards."""
    left = set(names)
    deadline = time.monotonic() + timeout
    while left and time.monotonic() < deadline:
        left = {n for n in left if not check(n)}
        if left:
            time.sleep(interval)
    return left


def merge_report(into: Any, other: Any) -> None:
    """Add ``other``'s figures to ``into`` (a suite's report over several runs): numbers are
    summed, lists joined, dicts of counts summed key by key."""
    for name, value in vars(other).items():
        mine = getattr(into, name)
        if isinstance(value, list):
            mine.extend(value)
        elif isinstance(value, dict):
            for k, v in value.items():
                mine[k] = mine.get(k, 0) + v
        else:
            setattr(into, name, mine + value)


def first_revisions(c: Cluster, names: Iterable[str], timeout: float) -> dict[str, Any]:
    """Each Rollout's stable revision once all have one (the first revision rolled out), or
    what there is at the timeout."""
    names = list(names)
    revisions: dict[str, Any] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        snap = c.rollouts()
        revisions = {
            n: ((snap.get(n) or {}).get("status") or {}).get("stableRevision") for n in names
        }
        if all(revisions.values()):
            break
        time.sleep(0.5)
    return revisions
