"""``sluice status NAME``: wait for a rollout to settle, and say how it ended in the exit code.

Made for CI pipelines: after ``kubectl apply`` a job runs ``sluice status web --timeout 15m`` and
branches on the exit code, while the job log shows one line per change of phase, step, weight or
message, so a person reading a failed pipeline sees how far the rollout got.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import click

from rollouts.cli.connection import Target, cluster_options, duration_callback, follow_rollout
from rollouts.cli.rollout_view import waits_for_person_in
from rollouts.request_annotation import ANNOTATION

HEALTHY, DEGRADED, WAITS_FOR_PERSON, TIMED_OUT, NOT_ASKED = 0, 1, 2, 3, 4
"""The exit codes, also listed in the command's help."""


@dataclass(frozen=True)
class StatusReading:
    """What a Rollout's current status means for someone waiting on it.

    ``code`` is the exit code once the rollout has settled one way or another, None while it is
    still on its way; ``text`` says why, in words for the job log. ``stale``: the status is not
    yet about the current spec or request, so its phase and step are not worth printing.
    """

    code: int | None
    text: str
    stale: bool = False


def read_status(doc: dict[str, Any]) -> StatusReading:
    """Settled or not, from the Rollout as the API server returns it.

    Nothing counts until the controller has seen the current spec (``observedGeneration``): right
    after ``kubectl apply`` the status still describes the previous revision, Healthy included,
    and a pipeline must not take that for the new revision's success. Likewise while a request
    (``sluice abort --no-wait``...) waits for the controller: the state is about to change.
    """
    meta = doc.get("metadata") or {}
    st = doc.get("status") or {}
    ns, name = meta.get("namespace", ""), meta.get("name", "")
    generation = meta.get("generation")
    observed = st.get("observedGeneration")
    if not st.get("phase"):
        return StatusReading(
            None, f"rollout {ns}/{name}: waiting for the controller to report", stale=True
        )
    if generation is not None and (observed is None or int(observed) < int(generation)):
        return StatusReading(
            None,
            f"rollout {ns}/{name}: waiting for the controller to observe generation {generation}",
            stale=True,
        )
    request = (meta.get("annotations") or {}).get(ANNOTATION)
    if request and request != st.get("lastRequest") and not _invalid_spec(st):
        # (an invalid spec is never acted on, so its request would be waited on forever)
        return StatusReading(
            None,
            f"rollout {ns}/{name}: waiting for the controller to handle {ANNOTATION}={request}",
            stale=True,
        )
    phase = st.get("phase")
    message = st.get("message") or ""
    if phase == "Degraded":
        return StatusReading(DEGRADED, f"rollout {ns}/{name} is Degraded{_colon(message)}")
    if phase == "Healthy" and st.get("currentRevision") == st.get("stableRevision"):
        return StatusReading(HEALTHY, f"rollout {ns}/{name} is Healthy{_colon(message)}")
    if phase == "Paused" and waits_for_person_in(doc):
        return StatusReading(
            WAITS_FOR_PERSON,
            f"rollout {ns}/{name} is paused, waiting for a person: promote, resume or abort"
            + (f" ({message})" if message else ""),
        )
    return StatusReading(None, f"rollout {ns}/{name} is {phase}{_colon(message)}")


def _invalid_spec(status: dict[str, Any]) -> bool:
    """The controller refused the spec (Stalled, reason InvalidSpec) or its traffic router cannot
    use its object (Stalled, RoutingError): nothing happens until a person fixes it, whatever is
    requested."""
    return any(
        c.get("type") == "Stalled"
        and c.get("status") == "True"
        and c.get("reason") in ("InvalidSpec", "RoutingError")
        for c in status.get("conditions") or []
    )


def _colon(message: str) -> str:
    return f": {message}" if message else ""


def progress_key(doc: dict[str, Any]) -> tuple[Any, ...]:
    """What a progress line shows; a new line is printed only when one of these changes."""
    st = doc.get("status") or {}
    return (
        st.get("phase"),
        st.get("step"),
        (st.get("weights") or {}).get("canary"),
        st.get("message"),
    )


def progress_line(doc: dict[str, Any], now: datetime | None = None) -> str:
    """``10:04:05 Progressing  step 1/4  canary 25%  rolling out revision 7c9f``"""
    st = doc.get("status") or {}
    clock = _clock(now)
    weight = (st.get("weights") or {}).get("canary")
    parts = [
        clock,
        f"{st.get('phase') or 'Unknown':<11}",
        f"step {st.get('step') or '-':<7}",
        f"canary {'-' if weight is None else f'{weight}%':>4}",
    ]
    if st.get("message"):
        parts.append(str(st["message"]))
    return "  ".join(parts)


def _clock(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%H:%M:%S")


class _StatusCommand(click.Command):
    """Errors exit 4: click's usage errors would exit 2, which here means "paused for a person",
    and a failure to reach the cluster must not read as the rollout's own Degraded (1)."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as e:
            e.exit_code = NOT_ASKED  # type: ignore[misc]  # click reads it per instance
            raise

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.ClickException as e:
            e.exit_code = NOT_ASKED  # type: ignore[misc]  # click reads it per instance
            raise


@click.command("status", cls=_StatusCommand)
@click.argument("name")
@click.option(
    "--timeout",
    default="10m",
    metavar="DURATION",
    show_default=True,
    callback=duration_callback,
    help="How long to wait, as 30s, 10m or 1h; 0 checks once without waiting.",
)
@click.option(
    "--poll",
    is_flag=True,
    help="Ask for the Rollout every --interval instead of watching it (for API servers or "
    "proxies that do not stream watches).",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.05),
    default=2.0,
    show_default=True,
    help="Seconds between two looks when polling (also when a watch is not allowed).",
)
@cluster_options
def status(target: Target, name: str, timeout: int, poll: bool, interval: float) -> None:
    """Wait until rollout NAME is Healthy, Degraded or paused for a person; say so in the exit code.

    A line is printed each time the phase, step, canary weight or message changes, so a CI log
    shows how far the rollout got. The status only counts once the controller has observed the
    Rollout's current generation: right after `kubectl apply`, the Healthy of the previous revision
    is not mistaken for the new one's.

    \b
    Exit codes:
      0  Healthy: the new revision is stable, nothing in flight
      1  Degraded: aborted (by analysis, a deadline or a person), an invalid spec, or a
         traffic router that cannot use its routing object
      2  paused, waiting for a person: promote, resume or abort it
      3  timed out (--timeout) before any of the above; the last state is printed
      4  could not ask: no cluster, no such rollout, no permission, or a usage error

    \b
    Example (a CI job after kubectl apply):
      sluice status web -n shop --timeout 15m || exit $?
    """
    try:
        code = _wait(target, name, timeout, poll, interval)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        raise SystemExit(130) from None
    raise SystemExit(code)


def _wait(target: Target, name: str, timeout: int, poll: bool, interval: float) -> int:
    last: dict[str, Any] | None = None
    shown: tuple[Any, ...] | None = None
    for doc in follow_rollout(target, name, timeout=timeout, interval=interval, poll=poll):
        last = doc
        decision = read_status(doc)
        # a stale status (the previous revision's Healthy...) is not progress: say what is awaited
        key = (decision.text,) if decision.stale else progress_key(doc)
        if key != shown:
            shown = key
            click.echo(f"{_clock()}  {decision.text}" if decision.stale else progress_line(doc))
        if decision.code is not None:
            click.echo(decision.text, err=decision.code != HEALTHY)
            return decision.code
    assert last is not None  # follow_rollout always yields the Rollout once
    what = read_status(last).text
    if timeout == 0:
        click.echo(f"not settled yet: {what}", err=True)
    else:
        click.echo(f"timed out after {_human(timeout)}: {what}", err=True)
    return TIMED_OUT


def _human(seconds: float) -> str:
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"
