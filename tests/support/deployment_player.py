"""Play the Deployment controller for a whole namespace from a thread.

The operator harness readies slots from the test's event loop, one Rollout at a time; suites
with hundreds of Rollouts and a controller in another process need one LIST per pass instead.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from typing import Any

import kubernetes

from tests.support.kube import list_json, set_deployment_ready


def unready(dep: dict[str, Any]) -> bool:
    """Not fully ready at its current generation (a template change counts as not seen yet)."""
    replicas = int((dep.get("spec") or {}).get("replicas") or 0)
    status = dep.get("status") or {}
    generation = (dep.get("metadata") or {}).get("generation", 1)
    return (
        status.get("readyReplicas") != replicas
        or status.get("replicas") != replicas
        or status.get("observedGeneration") != generation
    )


@dataclass
class DeploymentPlayer:
    api: kubernetes.client.ApiClient
    namespace: str
    interval: float = 0.1
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> DeploymentPlayer:
        self._thread = threading.Thread(target=self._loop, name="deployment-player", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        path = f"/apis/apps/v1/namespaces/{self.namespace}/deployments"
        while not self._stop.is_set():
            with contextlib.suppress(Exception):
                for dep in list_json(self.api, path):
                    if unready(dep):
                        with contextlib.suppress(Exception):
                            set_deployment_ready(self.api, self.namespace, dep["metadata"]["name"])
            self._stop.wait(self.interval)
