"""Whether a failed reconcile is this Rollout's own fault, and the field or object to name.

A reconcile can fail two ways. Transient trouble (the API server down, a 5xx, a 429, a conflict,
a timeout) says nothing about the Rollout: the reconcile is retried as it is. But some failures
come from the Rollout itself and repeat on every retry: the ``kubernetes`` client's models refuse
a body before sending it (a pydantic ValidationError naming ``spec.template.spec.containers[0]
.name``), the API server refuses it (400/422 naming the field), or code meets a shape it did not
expect. Those must become the Rollout's Stalled condition naming the field, so a person sees them
with ``kubectl get``, instead of a traceback in the controller's log every second.
"""

from __future__ import annotations

import json

import kubernetes
import pydantic

from analysis.api_conventions import field_path

REJECTED_STATUSES = frozenset({400, 422})
"""API answers that refuse the request itself (a retry sends the same body, and fails again)."""


def _client_problems(error: pydantic.ValidationError) -> list[str]:
    """The client validates a call's arguments; a body's errors are located as (arg, *path)."""
    out = []
    for err in error.errors():
        loc = list(err["loc"])
        if loc and (isinstance(loc[0], int) or loc[0] == "body"):
            loc = loc[1:]  # the argument: the body is what the user wrote
        out.append(f"{field_path(loc)}: {err['msg']}" if loc else str(err["msg"]))
    return list(dict.fromkeys(out))


def _api_message(error: kubernetes.client.ApiException) -> str:
    try:
        body = json.loads(error.body or "")
    except (TypeError, ValueError):
        return str(error.reason or error.status)
    message = body.get("message") if isinstance(body, dict) else None
    return str(message or error.reason or error.status)


def rejection(error: BaseException) -> str | None:
    """What about the Rollout made the reconcile fail, naming the field or object; None when
    the failure is transient (retry as usual)."""
    if isinstance(error, kubernetes.client.ApiException):
        if error.status in REJECTED_STATUSES:
            return f"the API server refused a write: {_api_message(error)}"
        return None
    if isinstance(error, pydantic.ValidationError):
        problems = "; ".join(_client_problems(error))
        return f"the Kubernetes client refused an object made from the Rollout: {problems}"
    if isinstance(error, (ValueError, TypeError, AttributeError, KeyError)):
        return f"could not be applied ({type(error).__name__}: {error})"
    return None
