"""The dashboard's guards, over real HTTP against the emulator (no browser needed).

An operation POST without this session's form token, with a wrong one, or from another site's
page is refused and nothing reaches the Rollout; with the token from the confirmation page it is
written as the CLI writes it. A non-loopback bind without --allow-remote is refused before
anything listens; a Host header that is not this machine (DNS rebinding) is refused."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import kubernetes
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient

from rollouts.cli.connection import Target, connect
from rollouts.cli.dashboard.app import create_app, namespaced
from rollouts.cli.dashboard.feeds import PageFeeds
from rollouts.cli.dashboard.hub import Key, RolloutHub
from rollouts.cli.main import cli
from rollouts.cli.rollout_view import RolloutView, gather
from tests.integration.operator.conftest import canary
from tests.support.kube import create_rollout, get_rollout

pytestmark = pytest.mark.integration

TOKEN = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')
ORIGIN = "http://testserver"


@pytest.fixture
def target(kubeconfig: Path) -> Iterator[Target]:
    t = connect(str(kubeconfig))
    try:
        yield t
    finally:
        t.close()


@pytest.fixture
def client(
    target: Target, api_client: kubernetes.client.ApiClient, namespace: str
) -> Iterator[TestClient]:
    create_rollout(api_client, canary())

    def read(key: Key, doc: dict[str, Any]) -> RolloutView:
        return gather(replace(target, namespace=key[0]), key[1], doc)

    hub = RolloutHub(target)
    app = create_app(
        hub,
        PageFeeds(hub, read),
        namespaced(target),
        allowed_hosts=("testserver",),
        operation_timeout=0.5,  # no controller runs here: the answer is "not acted on yet"
    )
    with TestClient(app, base_url=ORIGIN) as c:
        yield c


def request_annotation(api: kubernetes.client.ApiClient) -> str | None:
    meta = get_rollout(api, "ns", "web")["metadata"]
    value = (meta.get("annotations") or {}).get("sluice.dev/request")
    return None if value is None else str(value)


def token_from_confirmation(client: TestClient) -> str:
    page = client.get("/rollouts/ns/web/confirm/abort")
    assert page.status_code == 200, page.text
    match = TOKEN.search(page.text)
    assert match is not None, page.text
    return match.group(1)


URL = "/rollouts/ns/web/operations/abort"


def test_post_without_the_csrf_token_is_refused(
    client: TestClient, api_client: kubernetes.client.ApiClient
) -> None:
    token_from_confirmation(client)  # the session cookie is there; only the token is missing
    response = client.post(URL, data={}, headers={"Origin": ORIGIN})
    assert response.status_code == 403
    assert "no valid form token" in response.text
    response = client.post(URL, data={"csrf_token": "0" * 64}, headers={"Origin": ORIGIN})
    assert response.status_code == 403
    assert request_annotation(api_client) is None  # nothing was sent


def test_token_of_another_session_is_refused(
    client: TestClient, api_client: kubernetes.client.ApiClient
) -> None:
    token = token_from_confirmation(client)
    client.cookies.clear()  # another browser: a token read elsewhere does not carry over
    response = client.post(URL, data={"csrf_token": token}, headers={"Origin": ORIGIN})
    assert response.status_code == 403
    assert request_annotation(api_client) is None


def test_post_from_another_origin_is_refused(
    client: TestClient, api_client: kubernetes.client.ApiClient
) -> None:
    token = token_from_confirmation(client)
    response = client.post(
        URL, data={"csrf_token": token}, headers={"Origin": "http://evil.example"}
    )
    assert response.status_code == 403 and "foreign origin" in response.text
    assert request_annotation(api_client) is None


def test_post_with_the_token_sends_the_cli_request(
    client: TestClient, api_client: kubernetes.client.ApiClient
) -> None:
    token = token_from_confirmation(client)
    response = client.post(URL, data={"csrf_token": token}, headers={"Origin": ORIGIN})
    assert response.status_code == 200, response.text
    value = request_annotation(api_client)
    assert value is not None and re.fullmatch(r"abort@cli-\d{8}T\d{6}Z-[0-9a-f]{4}", value)
    assert "has not acted on it" in response.text and value in response.text


def test_foreign_host_header_is_refused(client: TestClient) -> None:
    assert client.get("/", headers={"Host": "rebound.example"}).status_code == 400
    assert client.get("/").status_code == 200


def test_pages_carry_no_secrets_of_the_pod_template(
    target: Target, api_client: kubernetes.client.ApiClient, client: TestClient
) -> None:
    doc = canary("shop")
    doc["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "DB_PASSWORD", "value": "hunter2-do-not-show"}
    ]
    create_rollout(api_client, doc)
    deadline = time.monotonic() + 10  # the shared watch brings the new rollout
    while (page := client.get("/rollouts/ns/shop")).status_code == 404:
        assert time.monotonic() < deadline, "the dashboard never saw rollout shop"
        time.sleep(0.1)
    assert page.status_code == 200, page.text
    assert "shop" in page.text and "hunter2" not in page.text and "DB_PASSWORD" not in page.text


def test_non_loopback_bind_is_refused_without_the_flag() -> None:
    result = CliRunner().invoke(cli, ["dashboard", "--address", "0.0.0.0", "--port", "0"])
    assert result.exit_code == 2
    assert "not a loopback address" in result.output and "--allow-remote" in result.output


def test_read_only_offers_and_accepts_no_operation(
    target: Target, api_client: kubernetes.client.ApiClient
) -> None:
    create_rollout(api_client, canary())
    hub = RolloutHub(target)
    app = create_app(
        hub,
        PageFeeds(hub, lambda key, doc: gather(replace(target, namespace=key[0]), key[1], doc)),
        namespaced(target),
        read_only=True,
        allowed_hosts=("testserver",),
    )
    with TestClient(app, base_url=ORIGIN) as client:
        page = client.get("/rollouts/ns/web")
        assert page.status_code == 200 and "Rollout" in page.text
        assert 'id="op-abort"' not in page.text and "read-only" in page.text
        confirm = client.get("/rollouts/ns/web/confirm/abort")
        assert confirm.status_code == 403 and "Read-only dashboard" in confirm.text
        assert "csrf_token" not in confirm.text  # no form to confirm with
        response = client.post(URL, data={}, headers={"Origin": ORIGIN})
        assert response.status_code == 403 and "Read-only dashboard" in response.text
    assert request_annotation(api_client) is None
