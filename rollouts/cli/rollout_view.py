"""What ``sluice get rollout`` shows, gathered once into plain values.

The renderers (plain text and rich) never touch the cluster: ``gather`` reads the Rollout, its
slot Deployments, its Events and its AnalysisRuns, and ``build_view`` folds them into a frozen
:class:`RolloutView`. That keeps the renderers deterministic (a test builds a view by hand and
reads the text), lets ``--watch`` compare two views to know whether anything changed, and keeps
every defensive read of a half-written object in one place: a Rollout being created, an invalid
spec the controller stalled on, or a Deployment the controller has not reported on yet must still
render, not crash the view.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast

from pydantic import ValidationError

from analysis.api import ArmValues
from analysis.stats.evidence import Evidence
from rollouts.api.rollout import AnalysisMetricStatus, CanaryStep
from rollouts.api.validation import InvalidSpec, parse_rollout
from rollouts.cli.connection import (
    ANALYSIS_RUNS,
    GROUP,
    LABEL_ROLLOUT,
    REQUEST_TIMEOUT,
    VERSION,
    Target,
    api_errors,
    get_rollout,
)
from rollouts.engine.pauses import INDEFINITE_PAUSES, waits_for_person

LABEL_SLOT = "sluice.dev/slot"
LABEL_REVISION = "sluice.dev/revision"
MAX_EVENTS = 5
"""Events shown: enough to see how the rollout got here, few enough to fit beside the rest."""
MAX_TREND = 10
"""Measurements in a metric's trend (an AnalysisRun keeps its last ten)."""

StepState = Literal["done", "current", "pending"]


@dataclass(frozen=True)
class StepView:
    number: int
    """1-based, as ``status.step`` and the events count steps."""
    text: str
    state: StepState


@dataclass(frozen=True)
class SlotView:
    name: str
    role: str | None
    revision: str | None
    image: str | None
    ready: int
    desired: int
    exists: bool
    """False when status names a slot whose Deployment is gone (or not created yet)."""


@dataclass(frozen=True)
class MetricView:
    name: str
    phase: str
    evidence: Evidence | None
    """The record the statistics produced, as the Rollout's status carries it (None when the
    status has none yet, or one this version cannot read)."""
    measurements: int
    dry_run: bool
    message: str
    trend: tuple[float | None, ...]
    """The last measurements' values, oldest first; None where a measurement had no value."""


@dataclass(frozen=True)
class RunView:
    name: str
    kind: str
    step_index: int | None
    phase: str
    message: str
    metrics: tuple[MetricView, ...]


@dataclass(frozen=True)
class EventView:
    type: str
    reason: str
    message: str
    time: datetime | None
    count: int


@dataclass(frozen=True)
class PauseView:
    reason: str
    since: datetime | None


@dataclass(frozen=True)
class AbortView:
    reason: str
    message: str
    time: datetime | None
    revision: str | None


@dataclass(frozen=True)
class ConditionView:
    type: str
    status: str
    reason: str
    message: str
    last_transition: datetime | None


@dataclass(frozen=True)
class GateView:
    """``status.gate``: the gate waited on (or last passed) and its last answer."""

    url: str
    state: str
    answer: str
    checked_at: datetime | None


@dataclass(frozen=True)
class RolloutView:
    name: str
    namespace: str
    strategy: Literal["canary", "blueGreen", "unknown"]
    phase: str | None
    message: str
    generation: int | None
    observed_generation: int | None
    current_revision: str | None
    stable_revision: str | None
    step: str | None
    """``status.step`` as kubectl's printer column shows it: steps done / steps (canary), or
    active / preview (blue-green)."""
    steps: tuple[StepView, ...]
    weight: int
    """Traffic on the canary now (``status.weights.canary``)."""
    desired_weight: int | None
    """What the steps ask for now: the current or last ``setWeight`` (None for blue-green)."""
    weight_verified: bool | None
    services: tuple[tuple[str, str], ...]
    """Role → the user's Service for it, in the strategy's order (stable, canary; active,
    preview)."""
    active_slot: str | None
    preview_slot: str | None
    slots: tuple[SlotView, ...]
    pauses: tuple[PauseView, ...]
    waits_for_person: bool
    abort: AbortView | None
    runs: tuple[RunView, ...]
    events: tuple[EventView, ...]
    last_request: str | None
    conditions: tuple[ConditionView, ...] = ()
    """``status.conditions`` as written (Ready, Progressing, Paused, Analysis...), in order."""
    gate: GateView | None = None
    """The gate waited on (or last passed), None without one."""


# --------------------------------------------------------------------------------- reading


def _dict(value: Any) -> dict[str, Any]:
    return cast(dict[str, Any], value) if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else []


def _int(value: Any, default: int = 0) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return default


def _opt_int(value: Any) -> int | None:
    return None if value is None else _int(value)


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        out = float(value)
    except ValueError:
        return None
    return out if math.isfinite(out) else None


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 time as Kubernetes writes it (``Z`` or an offset), always timezone-aware."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        out = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return out if out.tzinfo else out.replace(tzinfo=UTC)


def describe_step(raw: Any) -> str:
    """The same phrase the controller's events use (``CanaryStep.describe``), or a best effort
    for a step the model rejects (the controller then stalls, and the view must still show it)."""
    try:
        return CanaryStep.model_validate(raw).describe()
    except ValidationError:
        step = _dict(raw)
        return ", ".join(sorted(step)) or "(empty step)"


def _steps(raw_steps: list[Any], index: int | None, in_flight: bool) -> tuple[StepView, ...]:
    """Steps before the current index are done and the one at it is current (also where an
    aborted rollout stopped); with nothing in flight the last revision went through them all,
    unless the controller has not reported yet (no step index: nothing is done)."""
    out = []
    for i, raw in enumerate(raw_steps):
        state: StepState
        if not in_flight:
            state = "done" if index is not None else "pending"
        elif index is None or i > index:
            state = "pending"
        else:
            state = "done" if i < index else "current"
        out.append(StepView(i + 1, describe_step(raw), state))
    return tuple(out)


def _desired_weight(
    raw_steps: list[Any], index: int | None, in_flight: bool, aborted: bool
) -> int | None:
    """What the steps ask the canary to carry now: the latest ``setWeight`` reached, 100 once
    every step is done (promotion moves all traffic first), 0 when nothing is in flight."""
    if not in_flight or aborted:
        return 0
    idx = 0 if index is None else index
    if idx >= len(raw_steps):
        return 100
    for raw in reversed(raw_steps[: idx + 1]):
        weight = _dict(raw).get("setWeight")
        if isinstance(weight, int) and not isinstance(weight, bool):
            return weight
    return 0


def _image(deployment: Mapping[str, Any]) -> str | None:
    containers = _list(
        _dict(_dict(_dict(deployment.get("spec")).get("template")).get("spec")).get("containers")
    )
    images = [str(_dict(c).get("image")) for c in containers if _dict(c).get("image")]
    return ",".join(images) if images else None


def _slots(
    status: Mapping[str, Any], deployments: Sequence[Mapping[str, Any]], name: str
) -> tuple[SlotView, ...]:
    """Slots as status names them, with image and readiness from their Deployments (which are
    fresher than status between reconciles); a Deployment status does not name is shown too."""
    by_slot: dict[str, Mapping[str, Any]] = {}
    for dep in deployments:
        meta = _dict(dep.get("metadata"))
        labels = _dict(meta.get("labels"))
        if labels.get(LABEL_ROLLOUT) != name:
            continue
        slot = labels.get(LABEL_SLOT) or str(meta.get("name", "")).removeprefix(f"{name}-")
        by_slot[str(slot)] = dep
    out: list[SlotView] = []
    seen: set[str] = set()
    for raw in _list(status.get("slots")):
        s = _dict(raw)
        slot = str(s.get("name", "?"))
        seen.add(slot)
        found = by_slot.get(slot)
        if found is None:
            out.append(
                SlotView(
                    slot,
                    _str(s.get("role")),
                    _str(s.get("revision")),
                    None,
                    _int(s.get("readyReplicas")),
                    _int(s.get("replicas")),
                    exists=False,
                )
            )
            continue
        out.append(_slot_from(slot, _str(s.get("role")), found, _str(s.get("revision"))))
    for slot, dep in sorted(by_slot.items()):
        if slot not in seen:
            out.append(_slot_from(slot, None, dep, None))
    return tuple(sorted(out, key=lambda v: v.name))


def _slot_from(
    slot: str, role: str | None, dep: Mapping[str, Any], revision: str | None
) -> SlotView:
    labels = _dict(_dict(dep.get("metadata")).get("labels"))
    return SlotView(
        name=slot,
        role=role,
        revision=_str(labels.get(LABEL_REVISION)) or revision,
        image=_image(dep),
        ready=_int(_dict(dep.get("status")).get("readyReplicas")),
        desired=_int(_dict(dep.get("spec")).get("replicas")),
        exists=True,
    )


def _event_time(event: Mapping[str, Any]) -> datetime | None:
    for key in ("lastTimestamp", "eventTime", "firstTimestamp"):
        t = parse_time(event.get(key))
        if t is not None:
            return t
    return parse_time(_dict(event.get("metadata")).get("creationTimestamp"))


def _events(events: Iterable[Mapping[str, Any]], name: str) -> tuple[EventView, ...]:
    """The rollout's last events, newest last. Ordered by time, then by resourceVersion: events
    emitted within one second carry the same timestamp, and their order is still the story."""
    mine = []
    for e in events:
        involved = _dict(e.get("involvedObject"))
        if involved.get("name") != name or involved.get("kind", "Rollout") != "Rollout":
            continue
        rv = _int(_dict(e.get("metadata")).get("resourceVersion"))
        t = _event_time(e)
        mine.append((t or datetime.min.replace(tzinfo=UTC), rv, e, t))
    mine.sort(key=lambda x: (x[0], x[1]))
    return tuple(
        EventView(
            type=str(e.get("type") or "Normal"),
            reason=str(e.get("reason") or ""),
            message=" ".join(str(e.get("message") or "").split()),
            time=t,
            count=max(_int(e.get("count"), 1), 1),
        )
        for _, _, e, t in mine[-MAX_EVENTS:]
    )


def measurement_value(m: Mapping[str, Any]) -> float | None:
    """One number per measurement for a trend (see ``Measurement.trend_value``), read from an
    AnalysisRun's status as the API server returns it; a part this version cannot read is a gap."""
    value = _float(m.get("value"))
    if value is not None:
        return value
    try:
        return ArmValues.model_validate(_dict(m.get("values"))).relative()
    except ValidationError:
        return None


def _evidence(metric: dict[str, Any]) -> Evidence | None:
    """The evidence record of a metric in status, read as the controller reads it (so the flat
    form an earlier version wrote is converted the same way); None for one a newer or older
    controller wrote in a shape this version does not read (the rest of the view still renders)."""
    try:
        return AnalysisMetricStatus.model_validate(metric).evidence
    except ValidationError:
        value = metric.get("evidence")
        if not isinstance(value, dict):
            return None
        try:
            return Evidence.model_validate(value)
        except ValidationError:
            return None


def _trends(
    run_docs: Sequence[Mapping[str, Any]],
) -> dict[tuple[str, str], tuple[float | None, ...]]:
    out: dict[tuple[str, str], tuple[float | None, ...]] = {}
    for doc in run_docs:
        run = str(_dict(doc.get("metadata")).get("name", ""))
        for raw in _list(_dict(doc.get("status")).get("metrics")):
            metric = _dict(raw)
            ms = [_dict(m) for m in _list(metric.get("measurements"))][-MAX_TREND:]
            out[(run, str(metric.get("name", "")))] = tuple(measurement_value(m) for m in ms)
    return out


def _runs(
    status: Mapping[str, Any], run_docs: Sequence[Mapping[str, Any]], name: str
) -> tuple[RunView, ...]:
    """The current revision's runs from status (the compact evidence), with trends from the
    AnalysisRuns themselves; a run the Rollout no longer lists is history and is left out."""
    mine = [
        d
        for d in run_docs
        if _dict(_dict(d.get("metadata")).get("labels")).get(LABEL_ROLLOUT) == name
    ]
    trends = _trends(mine)
    out = []
    for raw in _list(status.get("analysisRuns")):
        r = _dict(raw)
        run = str(r.get("name", ""))
        metrics = tuple(
            MetricView(
                name=str(m.get("name", "")),
                phase=str(m.get("phase") or "Pending"),
                evidence=_evidence(m),
                measurements=_int(m.get("measurements")),
                dry_run=bool(m.get("dryRun")),
                message=" ".join(str(m.get("message") or "").split()),
                trend=trends.get((run, str(m.get("name", ""))), ()),
            )
            for m in (_dict(x) for x in _list(r.get("metrics")))
        )
        out.append(
            RunView(
                name=run,
                kind=str(r.get("kind") or ""),
                step_index=_opt_int(r.get("stepIndex")),
                phase=str(r.get("phase") or "Pending"),
                message=" ".join(str(r.get("message") or "").split()),
                metrics=metrics,
            )
        )
    return tuple(out)


def _services(strategy: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    canary, bg = _dict(strategy.get("canary")), _dict(strategy.get("blueGreen"))
    pairs = (
        (("stable", canary.get("stableService")), ("canary", canary.get("canaryService")))
        if canary
        else (("active", bg.get("activeService")), ("preview", bg.get("previewService")))
    )
    return tuple((role, str(svc)) for role, svc in pairs if svc)


def waits_for_person_in(doc: Mapping[str, Any]) -> bool:
    """The engine's own rule (``waits_for_person``) on a Rollout as the API server returns it;
    for a document the models reject (invalid, or a newer controller's), the pause reasons that
    never end by themselves."""
    try:
        return waits_for_person(parse_rollout(doc))
    except (InvalidSpec, ValidationError):
        conditions = _list(_dict(doc.get("status")).get("pauseConditions"))
        return any(_dict(p).get("reason") in INDEFINITE_PAUSES for p in conditions)


def build_view(
    rollout: Mapping[str, Any],
    deployments: Sequence[Mapping[str, Any]] = (),
    events: Sequence[Mapping[str, Any]] = (),
    runs: Sequence[Mapping[str, Any]] = (),
) -> RolloutView:
    """Fold what the API server returned into a view; lists may hold other rollouts' objects
    (selectors are a hint to the server, not a guarantee), so everything is filtered here."""
    meta = _dict(rollout.get("metadata"))
    spec = _dict(rollout.get("spec"))
    status = _dict(rollout.get("status"))
    name = str(meta.get("name", ""))
    strategy_doc = _dict(spec.get("strategy"))
    strategy: Literal["canary", "blueGreen", "unknown"] = (
        "canary"
        if "canary" in strategy_doc
        else "blueGreen"
        if "blueGreen" in strategy_doc
        else "unknown"
    )
    current, stable = _str(status.get("currentRevision")), _str(status.get("stableRevision"))
    in_flight = current is not None and current != stable
    abort_doc = _dict(status.get("abort"))
    abort = (
        AbortView(
            reason=str(abort_doc.get("reason") or ""),
            message=" ".join(str(abort_doc.get("message") or "").split()),
            time=parse_time(abort_doc.get("time")),
            revision=_str(abort_doc.get("revision")),
        )
        if abort_doc
        else None
    )
    index = _opt_int(status.get("currentStepIndex"))
    raw_steps = _list(_dict(strategy_doc.get("canary")).get("steps"))
    slots = _slots(status, [_dict(d) for d in deployments], name)
    pauses = tuple(
        PauseView(str(p.get("reason") or ""), parse_time(p.get("startTime")))
        for p in (_dict(x) for x in _list(status.get("pauseConditions")))
    )
    weights = _dict(status.get("weights"))
    verified = weights.get("verified")
    gate_doc = _dict(status.get("gate"))
    gate = (
        GateView(
            url=str(gate_doc.get("url") or ""),
            state=str(gate_doc.get("state") or ""),
            answer=" ".join(str(gate_doc.get("answer") or "").split()),
            checked_at=parse_time(gate_doc.get("checkedAt")),
        )
        if gate_doc
        else None
    )
    return RolloutView(
        name=name,
        namespace=str(meta.get("namespace", "")),
        strategy=strategy,
        phase=_str(status.get("phase")),
        message=" ".join(str(status.get("message") or "").split()),
        generation=_opt_int(meta.get("generation")),
        observed_generation=_opt_int(status.get("observedGeneration")),
        current_revision=current,
        stable_revision=stable,
        step=_str(status.get("step")),
        steps=_steps(raw_steps, index, in_flight) if strategy == "canary" else (),
        weight=_int(weights.get("canary")),
        desired_weight=(
            _desired_weight(raw_steps, index, in_flight, abort is not None)
            if strategy == "canary"
            else None
        ),
        weight_verified=verified if isinstance(verified, bool) else None,
        services=_services(strategy_doc),
        active_slot=next((s.name for s in slots if s.role == "active"), None),
        preview_slot=next((s.name for s in slots if s.role == "preview"), None),
        slots=slots,
        pauses=pauses,
        waits_for_person=waits_for_person_in(rollout) if pauses else False,
        abort=abort,
        runs=_runs(status, [_dict(r) for r in runs], name),
        events=_events([_dict(e) for e in events], name),
        last_request=_str(status.get("lastRequest")),
        conditions=tuple(
            ConditionView(
                type=str(c.get("type") or ""),
                status=str(c.get("status") or "Unknown"),
                reason=str(c.get("reason") or ""),
                message=" ".join(str(c.get("message") or "").split()),
                last_transition=parse_time(c.get("lastTransitionTime")),
            )
            for c in (_dict(x) for x in _list(status.get("conditions")))
        ),
        gate=gate,
    )


# --------------------------------------------------------------------------------- the cluster


def _items(doc: Any) -> list[dict[str, Any]]:
    return [i for i in _list(_dict(doc).get("items")) if isinstance(i, dict)]


def _raw(response: Any) -> Any:
    """The JSON of a response read with ``_preload_content=False``: the API server's own
    camelCase objects, as the Rollout comes, rather than the client's snake_case models."""
    try:
        return json.loads(response.data)
    finally:
        response.release_conn()


def gather(target: Target, name: str, rollout: Mapping[str, Any] | None = None) -> RolloutView:
    """Read everything the view shows (``rollout`` when the caller already has it, e.g. from a
    watch event). Each read fails as one line naming what could not be read."""
    ns = target.namespace
    doc = rollout if rollout is not None else get_rollout(target, name, ns)
    selector = f"{LABEL_ROLLOUT}={name}"
    with api_errors(f"deployments of rollout {ns}/{name}", target):
        deployments = _raw(
            target.apps.list_namespaced_deployment(
                ns,
                label_selector=selector,
                _preload_content=False,
                _request_timeout=REQUEST_TIMEOUT,
            )
        )
    with api_errors(f"events of rollout {ns}/{name}", target):
        events = _raw(
            target.core.list_namespaced_event(
                ns,
                field_selector=f"involvedObject.name={name}",
                _preload_content=False,
                _request_timeout=REQUEST_TIMEOUT,
            )
        )
    with api_errors(f"analysis runs of rollout {ns}/{name}", target):
        runs = target.custom.list_namespaced_custom_object(
            GROUP,
            VERSION,
            ns,
            ANALYSIS_RUNS,
            label_selector=selector,
            _request_timeout=REQUEST_TIMEOUT,
        )
    return build_view(doc, _items(deployments), _items(events), _items(runs))
