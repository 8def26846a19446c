"""``sluice promote | abort | retry | pause | resume NAME``: the manual operations.

Each writes the ``sluice.dev/request: <kind>@<id>`` annotation the operator consumes (see
``rollouts/request_annotation.py`` and docs/gitops.md): a merge patch of that one annotation, never the
spec, so Argo CD and Flux have nothing to revert and every other annotation stays as it is. The id
is fresh per call (a timestamp and random hex), because the operator acts once per id.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import click
import urllib3
from kubernetes.client.exceptions import ApiException

from rollouts.cli.connection import (
    GROUP,
    REQUEST_TIMEOUT,
    ROLLOUTS,
    VERSION,
    CliError,
    Target,
    api_errors,
    cluster_options,
    duration_callback,
    follow_rollout,
    get_rollout,
)
from rollouts.engine.plan import RequestKind
from rollouts.request_annotation import ANNOTATION, InvalidRequest, parse_request


def new_id(now: datetime | None = None) -> str:
    """``cli-20250301T100000Z-1f2e``: sorts by time, and two calls in one second still differ."""
    stamp = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"cli-{stamp}-{secrets.token_hex(2)}"


def request_value(kind: RequestKind, rid: str | None = None) -> str:
    """The annotation's value, checked with the operator's own parser before it is sent."""
    value = f"{kind}@{rid or new_id()}"
    try:
        parse_request(value)
    except InvalidRequest as e:  # a bug here, not the user's: say it plainly all the same
        raise CliError(str(e)) from None
    return value


def request_patch(value: str) -> dict[str, Any]:
    """A JSON merge patch that sets this one annotation: other keys of ``metadata.annotations``
    and everything else of the object are left as they are."""
    return {"metadata": {"annotations": {ANNOTATION: value}}}


def send(target: Target, name: str, kind: RequestKind) -> tuple[dict[str, Any], str]:
    """Write the request on the Rollout (which must exist); the Rollout before, and the value."""
    ns = target.namespace
    doc = get_rollout(target, name, ns)
    value = request_value(kind)
    earlier = ((doc.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION)
    if earlier:
        click.echo(
            f"warning: replacing {ANNOTATION}={earlier}, which the controller has not handled "
            "yet (is sluice running?)",
            err=True,
        )
    with api_errors(f"{kind} rollout {ns}/{name}", target):
        target.custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            ns,
            ROLLOUTS,
            name,
            request_patch(value),
            _content_type="application/merge-patch+json",
            _request_timeout=REQUEST_TIMEOUT,
        )
    return doc, value


def wait_handled(
    target: Target, name: str, value: str, timeout: float, interval: float = 0.5
) -> dict[str, Any] | None:
    """The Rollout once ``status.lastRequest`` shows the operator acted on ``value``; None when
    ``timeout`` passed first."""
    for doc in follow_rollout(target, name, timeout=timeout, interval=interval):
        if (doc.get("status") or {}).get("lastRequest") == value:
            return doc
    return None


def ignored_reason(
    target: Target, name: str, value: str, doc: dict[str, Any] | None = None
) -> str | None:
    """Why the controller ignored the request ``value`` (a promote with nothing in flight...).

    The status says so (``lastRequestIgnored``, written with ``lastRequest``), so ``doc``, the
    Rollout that showed the request handled, answers at once. A controller that predates that
    field only posted a RequestIgnored Event, looked up here as a fallback; best effort: Events
    may be unreadable (RBAC), and the status line follows either way."""
    st = (doc or {}).get("status") or {}
    if st.get("lastRequest") == value and st.get("lastRequestIgnored"):
        return str(st["lastRequestIgnored"])
    try:
        events = target.core.list_namespaced_event(
            target.namespace, _request_timeout=REQUEST_TIMEOUT
        ).items
    except (ApiException, urllib3.exceptions.HTTPError, OSError, ValueError):
        return None
    for e in events:
        involved = e.involved_object
        if (
            e.reason == "RequestIgnored"
            and involved is not None
            and involved.name == name
            and value in (e.message or "")
        ):
            return str(e.message)
    return None


def _summary(doc: dict[str, Any]) -> str:
    st = doc.get("status") or {}
    weight = (st.get("weights") or {}).get("canary")
    parts = [f"{st.get('phase') or 'Unknown'}"]
    if st.get("step") and st["step"] != "-":  # "-": no revision rolling out through the steps
        parts.append(f"step {st['step']}")
    if weight is not None:
        parts.append(f"canary {weight}%")
    text = ", ".join(parts)
    return f"{text}: {st['message']}" if st.get("message") else text


def run(target: Target, name: str, kind: RequestKind, wait: bool, timeout: int) -> None:
    _, value = send(target, name, kind)
    where = f"rollout {target.namespace}/{name}"
    click.echo(f"{kind} requested for {where} ({ANNOTATION}={value})")
    if not wait:
        return
    try:
        doc = wait_handled(target, name, value, timeout)
    except KeyboardInterrupt:
        click.echo("interrupted; the request stays for the controller to handle", err=True)
        raise SystemExit(130) from None
    if doc is None:
        raise CliError(
            f"{kind} for {where}: the controller has not acted on it yet after {timeout}s; "
            "is sluice running? (the request stays; --no-wait does not wait)"
        )
    ignored = ignored_reason(target, name, value, doc)
    if ignored is not None:
        click.echo(f"ignored by the controller: {ignored}")
    click.echo(f"{where} is {_summary(doc)}")


def _wait_options(command: Callable[..., Any]) -> Callable[..., Any]:
    command = click.option(
        "--timeout",
        default="30s",
        show_default=True,
        metavar="DURATION",
        callback=duration_callback,
        help="How long --wait waits for the controller (30s, 2m, ...).",
    )(command)
    command = click.option(
        "--wait/--no-wait",
        default=True,
        show_default=True,
        help="Wait until the controller has acted on the request (status.lastRequest), then "
        "print the rollout's phase and message; exit 1 if it does not act within --timeout.",
    )(command)
    return command


def _operation(kind: RequestKind, summary: str, example: str) -> click.Command:
    @click.command(kind)
    @click.argument("name")
    @_wait_options
    @cluster_options
    def command(target: Target, name: str, wait: bool, timeout: int) -> None:
        run(target, name, kind, wait, timeout)

    command.help = (
        f"{summary}\n\nWrites the annotation {ANNOTATION}={kind}@<id> (a fresh id) on rollout "
        "NAME, never the spec, so GitOps tools have nothing to revert; the same as\n"
        f"`kubectl annotate rollout NAME {ANNOTATION}={kind}@<id>`.\n\n"
        f"\b\nExample:\n  {example}"
    )
    return command


@click.command("promote")
@click.argument("name")
@click.option(
    "--full",
    is_flag=True,
    help="Skip every remaining step and analysis: all traffic to the new revision now.",
)
@_wait_options
@cluster_options
def promote(target: Target, name: str, full: bool, wait: bool, timeout: int) -> None:
    """End the current pause or step of rollout NAME and go on to the next one.

    With --full, skip the remaining steps and analysis and promote the new revision at once
    (request kind promote-full). Writes the annotation sluice.dev/request=promote@<id> (a fresh id)
    on the Rollout, never the spec, so GitOps tools have nothing to revert.

    \b
    Example:
      sluice promote web -n shop
      sluice promote web --full --no-wait
    """
    run(target, name, "promote-full" if full else "promote", wait, timeout)


abort = _operation(
    "abort",
    "Abort rollout NAME: all traffic back to the stable revision, then scale the canary down. "
    "The Rollout stays Degraded until a new revision or a retry.",
    "sluice abort web -n shop",
)
retry = _operation(
    "retry",
    "Start the aborted revision's rollout of NAME again from the first step.",
    "sluice retry web -n shop",
)
pause = _operation(
    "pause",
    "Hold rollout NAME at its current step until resume (or promote).",
    "sluice pause web -n shop",
)
resume = _operation(
    "resume",
    "Continue rollout NAME after a pause.",
    "sluice resume web -n shop",
)

__all__ = [
    "abort",
    "new_id",
    "pause",
    "promote",
    "request_patch",
    "request_value",
    "resume",
    "retry",
]
