"""The controller's client transport against the emulator: requests straight to the API server's
connection pool (``_PoolPerHost``) and API methods without pydantic's argument check
(``rollouts.cluster.unvalidated_calls``) send what the library sends, and get its answers."""

from __future__ import annotations

import http.server
import threading

import kubernetes
import pydantic
import pytest
import urllib3

from rollouts.cluster import unvalidated_calls
from rollouts.cluster.kube import _PoolPerHost, bound_api_client
from tests.support.kube import RunningEmulator, create_rollout, get_rollout
from tests.support.rollouts import rollout_doc

pytestmark = pytest.mark.integration


def controller_client(api_client: kubernetes.client.ApiClient) -> kubernetes.client.ApiClient:
    return bound_api_client(api_client, pool_size=4, timeout=(2.0, 5.0))


def test_reads_writes_and_queries_reach_the_server_through_one_pool(
    api_client: kubernetes.client.ApiClient, namespace: str, kube_emulator: RunningEmulator
) -> None:
    ours = controller_client(api_client)
    transport = ours.rest_client.pool_manager
    assert isinstance(transport, _PoolPerHost)
    core = kubernetes.client.CoreV1Api(ours)
    for name, app in (("a", "web"), ("b", "api")):
        core.create_namespaced_config_map(
            namespace,
            {"metadata": {"name": name, "labels": {"app": app}}, "data": {"k": name}},
        )
    found = core.list_namespaced_config_map(namespace)
    assert sorted(c.metadata.name for c in found.items) == ["a", "b"]
    # a merge patch of a custom object's status, JSON in and out
    create_rollout(api_client, rollout_doc(steps=[{"setWeight": 50}]))
    answer = kubernetes.client.CustomObjectsApi(ours).patch_namespaced_custom_object_status(
        "sluice.dev", "v1alpha1", namespace, "rollouts", "web", {"status": {"phase": "Paused"}}
    )
    assert answer["status"]["phase"] == "Paused"
    assert get_rollout(api_client, namespace, "web")["status"]["phase"] == "Paused"
    # every request went through the one pool urllib3's manager keeps for the server
    (pool,) = transport._pools.values()
    assert len(transport._manager.pools) == 1
    assert transport._manager.connection_from_url(kube_emulator.url) is pool
    assert pool.num_requests >= 4


def test_the_path_and_query_reach_the_server_as_the_manager_sends_them() -> None:
    """(The emulator ignores label selectors: a server that echoes what it got tells.)"""
    seen: list[tuple[str, str, bytes]] = []

    class Echo(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            seen.append((self.command, self.path, self.rfile.read(length)))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            answer = b'{"items": []}' if self.command == "GET" else b"{}"
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        do_GET = do_PATCH = _answer

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        config = kubernetes.client.Configuration()
        config.host = f"http://127.0.0.1:{server.server_address[1]}"
        ours = controller_client(kubernetes.client.ApiClient(config))
        core = kubernetes.client.CoreV1Api(ours)
        core.list_namespaced_config_map("ns", label_selector="app=web", limit=5)
        core.patch_namespaced_config_map("c", "ns", {"data": {"k": "v"}})
    finally:
        server.shutdown()
        server.server_close()
    assert seen == [
        ("GET", "/api/v1/namespaces/ns/configmaps?labelSelector=app%3Dweb&limit=5", b""),
        ("PATCH", "/api/v1/namespaces/ns/configmaps/c", b'{"data": {"k": "v"}}'),
    ]


def test_a_missing_object_is_still_an_api_exception_with_its_status(
    api_client: kubernetes.client.ApiClient, namespace: str
) -> None:
    core = kubernetes.client.CoreV1Api(controller_client(api_client))
    with pytest.raises(kubernetes.client.ApiException) as raised:
        core.read_namespaced_config_map("absent", namespace)
    assert raised.value.status == 404


def test_a_client_closed_and_used_again_reconnects_as_urllib3s_manager_would(
    api_client: kubernetes.client.ApiClient, namespace: str, kube_emulator: RunningEmulator
) -> None:
    """Closing the client clears the manager's pools; the next request gets a fresh pool, the
    one the manager now holds, as through urllib3's own manager."""
    ours = controller_client(api_client)
    transport = ours.rest_client.pool_manager
    core = kubernetes.client.CoreV1Api(ours)
    core.list_namespaced_config_map(namespace)
    (first,) = transport._pools.values()
    ours.close()
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "after-close"}})
    (second,) = transport._pools.values()
    assert second is not first
    assert second is transport._manager.connection_from_url(kube_emulator.url)
    names = [c.metadata.name for c in core.list_namespaced_config_map(namespace).items]
    assert "after-close" in names


def test_a_proxy_keeps_urllib3s_proxy_manager() -> None:
    config = kubernetes.client.Configuration()
    config.host = "https://10.0.0.1:443"
    config.proxy = "http://proxy.example:3128"
    ours = bound_api_client(kubernetes.client.ApiClient(config), pool_size=4, timeout=(1.0, 2.0))
    assert isinstance(ours.rest_client.pool_manager, urllib3.ProxyManager)


def test_unvalidated_methods_send_the_same_requests(
    api_client: kubernetes.client.ApiClient, namespace: str
) -> None:
    """Positional and keyword arguments, a timeout, a body: as the wrapped methods took them."""
    unvalidated_calls.install()
    for cls in unvalidated_calls.CLASSES:
        assert not [n for n, v in vars(cls).items() if hasattr(v, "raw_function")], cls
    core = kubernetes.client.CoreV1Api(controller_client(api_client))
    core.create_namespaced_config_map(
        namespace, body={"metadata": {"name": "c"}, "data": {"k": "v"}}, _request_timeout=(1, 3)
    )
    assert core.read_namespaced_config_map("c", namespace).data == {"k": "v"}
    assert unvalidated_calls.install() == 0  # once


def test_a_deployment_made_from_the_users_template_is_still_checked_before_sending(
    api_client: kubernetes.client.ApiClient, namespace: str
) -> None:
    """The emulator stores anything: the client's check is what names a bad port (Stalled)."""
    unvalidated_calls.install()
    apps = kubernetes.client.AppsV1Api(controller_client(api_client))
    container = {"name": "web", "image": "web:1", "ports": [{"containerPort": "eighty"}]}
    body = {
        "metadata": {"name": "web-b"},
        "spec": {"selector": {}, "template": {"spec": {"containers": [container]}}},
    }
    with pytest.raises(pydantic.ValidationError, match="containerPort"):
        apps.create_namespaced_deployment(namespace, body)
