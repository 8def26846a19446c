"""The real operator harness (tests/integration/operator/conftest.py) for the kubectl tests, plus a
recorder of every version of a Rollout the API server holds: what ``kubectl get -w`` and
``kubectl wait`` are shown, one watch event per write."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import kubernetes
import pytest
import urllib3

from tests.integration.operator.conftest import (
    OperatorHarness,
    api_client,
    canary,
    harness,
    healthy,
    kube_emulator,
    kubeconfig,
    namespace,
    operator_settings,
    services,
)
from tests.support.kube import SLUICE_GROUP, SLUICE_VERSION

__all__ = [
    "OperatorHarness",
    "Recorder",
    "api_client",
    "canary",
    "harness",
    "healthy",
    "kube_emulator",
    "kubeconfig",
    "namespace",
    "operator_settings",
    "recorder",
    "services",
]


@dataclass
class Recorder:
    """Watches the Rollouts of a namespace in a thread and keeps every object version it is sent,
    as ``kubectl get -w`` receives them (a status write is one MODIFIED event)."""

    api: kubernetes.client.ApiClient
    namespace: str
    versions: list[dict[str, Any]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rollout-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def seen(self, name: str = "web") -> list[dict[str, Any]]:
        with self._lock:
            return [v for v in self.versions if v["metadata"]["name"] == name]

    def _run(self) -> None:
        custom = kubernetes.client.CustomObjectsApi(self.api)
        rv = ""
        while not self._stop.is_set():
            w = kubernetes.watch.Watch()  # type: ignore[no-untyped-call]
            try:
                for event in w.stream(  # type: ignore[no-untyped-call]
                    custom.list_namespaced_custom_object,
                    SLUICE_GROUP,
                    SLUICE_VERSION,
                    self.namespace,
                    "rollouts",
                    resource_version=rv,
                    _request_timeout=(5, 0.5),
                ):
                    obj = event["object"]
                    if event["type"] in ("ADDED", "MODIFIED"):
                        with self._lock:
                            self.versions.append(obj)
                        rv = obj["metadata"]["resourceVersion"]
                    if self._stop.is_set():
                        break
            except (urllib3.exceptions.HTTPError, kubernetes.client.ApiException, OSError):
                pass  # a read timeout between writes: watch again from the last version
            finally:
                w.stop()  # type: ignore[no-untyped-call]


@pytest.fixture()
def recorder(harness: OperatorHarness) -> Iterator[Recorder]:
    rec = Recorder(harness.api, harness.namespace)
    rec.start()
    try:
        yield rec
    finally:
        rec.stop()
