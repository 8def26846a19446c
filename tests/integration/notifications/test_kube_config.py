"""The notification ConfigMap and Secret as the sender reads them from the emulator.

What scale relies on: a burst of notices in one namespace (a fleet updated at once) reads each
object once per ``ttl``, not once per notice; an edit shows after ``ttl``; a transient failure
is asked again at once, a refusal is not.
"""

from __future__ import annotations

import base64

import kubernetes
import pytest

from rollouts.notifications.config import NotificationConfigError
from rollouts.notifications.kube import KubeNotificationConfig
from tests.support.kube import RunningEmulator

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def reads(emulator: RunningEmulator, plural: str) -> int:
    return sum(
        1
        for call in list(emulator.emulator.calls)
        if call.method == "GET" and call.plural == plural and call.name
    )


def secret(api: kubernetes.client.ApiClient, namespace: str, url: str) -> None:
    kubernetes.client.CoreV1Api(api).create_namespaced_secret(
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "sluice-notifications", "namespace": namespace},
            "data": {"team": base64.b64encode(url.encode()).decode()},
        },
    )


def test_a_burst_reads_each_object_once_per_ttl_and_an_edit_shows_after_it(
    kube_emulator: RunningEmulator, api_client: kubernetes.client.ApiClient, namespace: str
) -> None:
    clock = Clock()
    config = KubeNotificationConfig(api_client, timeout=5.0, ttl=10.0, clock=clock)
    secret(api_client, namespace, "json://127.0.0.1:1/a")
    for _ in range(50):
        assert config.receivers(namespace) == {"team": "json://127.0.0.1:1/a"}
        assert config.defaults(namespace) == []  # no ConfigMap: no defaults, and that is kept
    assert reads(kube_emulator, "secrets") == 1
    assert reads(kube_emulator, "configmaps") == 1

    kubernetes.client.CoreV1Api(api_client).patch_namespaced_secret(
        "sluice-notifications",
        namespace,
        {"data": {"team": base64.b64encode(b"json://127.0.0.1:1/b").decode()}},
    )
    clock.now += 9.9
    assert config.receivers(namespace)["team"].endswith("/a")  # still within the ttl
    clock.now += 0.1
    assert config.receivers(namespace)["team"].endswith("/b")
    assert reads(kube_emulator, "secrets") == 2
    # another namespace has its own entry
    assert config.receivers("other") == {}
    assert reads(kube_emulator, "secrets") == 3


def test_a_transient_failure_is_asked_again_and_a_refusal_is_kept(
    kube_emulator: RunningEmulator, api_client: kubernetes.client.ApiClient, namespace: str
) -> None:
    clock = Clock()
    config = KubeNotificationConfig(api_client, timeout=5.0, ttl=10.0, clock=clock)
    secret(api_client, namespace, "json://127.0.0.1:1/a")

    kube_emulator.inject(method="GET", plural="secrets", status=500, times=1)
    with pytest.raises(NotificationConfigError, match="500"):
        config.receivers(namespace)
    assert config.receivers(namespace) == {"team": "json://127.0.0.1:1/a"}  # not kept

    kube_emulator.inject(method="GET", plural="configmaps", status=403, times=1)
    for _ in range(3):
        with pytest.raises(NotificationConfigError, match="apply deploy/rbac"):
            config.defaults(namespace)
    assert reads(kube_emulator, "configmaps") == 1  # the refusal was kept
    clock.now += 10.0
    assert config.defaults(namespace) == []  # and asked again after the ttl
