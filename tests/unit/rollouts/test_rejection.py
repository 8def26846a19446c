"""Which reconcile failures are the Rollout's own fault (Stalled, naming the field) and which are
transient (retried as they are): ``rollouts.rejection``."""

from __future__ import annotations

import json

import kubernetes
import pytest
import urllib3

from rollouts.rejection import rejection


def client_error() -> Exception:
    """What the ``kubernetes`` client raises, before sending, for a port that is not a number."""
    apps = kubernetes.client.AppsV1Api(kubernetes.client.ApiClient())
    container = {"name": "web", "image": "web:1", "ports": [{"containerPort": "eighty"}]}
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web-b"},
        "spec": {"selector": {}, "template": {"spec": {"containers": [container]}}},
    }
    try:
        apps.create_namespaced_deployment("ns", body)
    except Exception as e:
        return e
    raise AssertionError("the client sent it")


def api_error(status: int, message: str = "") -> kubernetes.client.ApiException:
    e = kubernetes.client.ApiException(status=status, reason="Reason")
    e.body = json.dumps({"kind": "Status", "message": message})
    return e


def test_a_body_the_client_refuses_names_the_field_of_the_rollout() -> None:
    why = rejection(client_error())
    assert why is not None
    assert "spec.template.spec.containers[0].ports[0].containerPort" in why
    assert "valid integer" in why


def test_a_write_the_api_server_refuses_names_its_message() -> None:
    msg = 'Deployment.apps "web-b" is invalid: spec.template.spec.containers[0].name: Invalid'
    why = rejection(api_error(422, msg))
    assert why is not None and msg in why


@pytest.mark.parametrize("status", [404, 409, 429, 500, 503])
def test_transient_or_retryable_api_errors_are_not_the_rollouts_fault(status: int) -> None:
    assert rejection(api_error(status)) is None


def test_connection_trouble_is_not_the_rollouts_fault() -> None:
    assert rejection(urllib3.exceptions.MaxRetryError(None, "/", "refused")) is None  # type: ignore[arg-type]
    assert rejection(TimeoutError()) is None


def test_a_shape_the_code_did_not_expect_is_named() -> None:
    why = rejection(AttributeError("'str' object has no attribute 'get'"))
    assert why is not None and "AttributeError" in why
