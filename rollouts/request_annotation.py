"""Manual operations as an annotation: ``sluice.dev/request: <kind>@<id>``.

Why an annotation: ``kubectl annotate`` alone can send one, it never touches the spec (so Argo CD
and Flux have nothing to revert), and RBAC can grant it without granting spec edits. The id makes a
request idempotent: the engine acts once per id (``status.lastRequest`` remembers it), and the
operator removes the annotation afterwards, only if it still holds the same value, so a newer
request written meanwhile is never lost.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rollouts.engine.plan import REQUEST_KINDS, Request

ANNOTATION = "sluice.dev/request"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:+\-]{0,127}$")


class InvalidRequest(ValueError):
    """The annotation's value is not ``<kind>@<id>``; the message names the annotation."""


def parse_request(value: str) -> Request:
    kind, sep, rid = value.strip().partition("@")
    if not sep or not rid:
        raise InvalidRequest(
            f"annotation {ANNOTATION}={value!r}: expected <kind>@<id>, for example promote@1"
        )
    if kind not in REQUEST_KINDS:
        raise InvalidRequest(
            f"annotation {ANNOTATION}={value!r}: unknown kind {kind!r} "
            f"(one of {', '.join(REQUEST_KINDS)})"
        )
    if not _ID.match(rid):
        raise InvalidRequest(
            f"annotation {ANNOTATION}={value!r}: the id must be a token of letters, digits "
            "and . _ : + - (at most 128)"
        )
    return Request(kind, value.strip())


@dataclass(frozen=True)
class Pending:
    """What the annotation holds now: a request, a problem with it, or nothing."""

    raw: str | None
    request: Request | None = None
    problem: str | None = None


def pending(annotations: Mapping[str, str] | None) -> Pending:
    raw = (annotations or {}).get(ANNOTATION)
    if raw is None:
        return Pending(None)
    try:
        return Pending(raw, request=parse_request(raw))
    except InvalidRequest as e:
        return Pending(raw, problem=str(e))


def clear_patch(raw: str) -> list[dict[str, Any]]:
    """A JSON patch removing the annotation only if it still holds ``raw`` (else the API server
    answers 422 and the newer request stays for the next reconcile)."""
    path = "/metadata/annotations/" + ANNOTATION.replace("~", "~0").replace("/", "~1")
    return [{"op": "test", "path": path, "value": raw}, {"op": "remove", "path": path}]
