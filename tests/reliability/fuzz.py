"""Fuzz: generated bad Rollout and AnalysisTemplate bodies applied raw to the API, each must end
with a status that names what is wrong, with no crash and no effect on a healthy neighbour.

Rollout bodies: the controller must give each a status; one the Rollout validator refuses must be
Stalled with a message naming a ``spec`` field; one it accepts must reach a phase (or be Stalled
naming the object it cannot use). AnalysisTemplate bodies: each is referenced by an analysis step
of its own Rollout, which is then updated; an invalid template must abort the rollout with a
message naming the template's field, and no template may let a rollout promote (every valid
template points at a Prometheus that refuses connections: there is no evidence to promote on).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import kubernetes

from analysis.api import parse_template
from rollouts.api.validation import parse_rollout
from tests.reliability.bodies import Body, bodies
from tests.reliability.cluster import Cluster, cluster, merge_report

FIELD = re.compile(r"\bspec(\.[A-Za-z]|\[|:)")
"""A message names a field when it carries a ``spec.…`` path (or says ``spec:``)."""


@dataclass
class FuzzReport:
    rollout_bodies: int = 0
    template_bodies: int = 0
    invalid: int = 0
    """Bodies the validators refuse (the rest were left valid by their mutations)."""
    stalled_naming_field: int = 0
    valid_with_status: int = 0
    refused_on_create: int = 0
    """Bodies the API refused outright (nothing for the controller to judge)."""
    neighbours: int = 0
    neighbours_promoted: int = 0
    promoted_without_evidence: int = 0
    controller_exits: int = 0
    tracebacks: int = 0
    api_requests: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)

    def merge(self, other: FuzzReport) -> None:
        merge_report(self, other)


def _conditions(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    st = doc.get("status") or {}
    return {c.get("type"): c for c in st.get("conditions") or [] if isinstance(c, dict)}


def _stalled(doc: dict[str, Any]) -> str | None:
    cond = _conditions(doc).get("Stalled")
    if cond and cond.get("status") == "True":
        return str(cond.get("message") or "")
    return None


def _judged(doc: dict[str, Any]) -> bool:
    st = doc.get("status") or {}
    gen = (doc.get("metadata") or {}).get("generation")
    return bool(st.get("phase")) and (
        _stalled(doc) is not None or st.get("observedGeneration") == gen
    )


def _healthy_at(doc: dict[str, Any] | None, not_revision: str | None) -> bool:
    st = (doc or {}).get("status") or {}
    return (
        st.get("phase") == "Healthy"
        and st.get("currentRevision") == st.get("stableRevision")
        and st.get("stableRevision") is not None
        and st.get("stableRevision") != not_revision
    )


def _neighbour(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "sluice.dev/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": name},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": f"{name}:1"}]},
            },
            "strategy": {
                "canary": {
                    "stableService": name,
                    "canaryService": f"{name}-canary",
                    "scaleDownDelaySeconds": 0,
                    "steps": [{"setWeight": 50}, {"pause": {"duration": "1s"}}],
                }
            },
        },
    }


def _template_rollout(body: Body) -> dict[str, Any]:
    doc = _neighbour(body.name)
    doc["spec"]["strategy"]["canary"]["steps"] = [
        {"setWeight": 20},
        {"analysis": {"templates": [{"templateName": body.name}]}},
    ]
    return doc


def _wait(
    c: Cluster, done: Callable[[dict[str, dict[str, Any]]], set[str]], timeout: float
) -> dict[str, dict[str, Any]]:
    """Poll one LIST at a time until ``done(snapshot)`` returns no laggards, or the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        snapshot = c.rollouts()
        if not done(snapshot) or time.monotonic() >= deadline:
            return snapshot
        time.sleep(0.5)


def _create_all(c: Cluster, report: FuzzReport, items: list[tuple[str, Body]]) -> list[Body]:
    created = []
    for plural, body in items:
        try:
            c.create(plural, body.doc)
            created.append(body)
        except kubernetes.client.ApiException:
            report.refused_on_create += 1
    return created


def fuzz_rollouts(count: int, seed: int, timeout: float = 120.0) -> FuzzReport:
    """One controller, one neighbour and ``count`` bad Rollout bodies in a fresh cluster."""
    report = FuzzReport(rollout_bodies=count, neighbours=1)
    started = time.monotonic()
    batch = list(bodies("Rollout", count, seed, prefix=f"r{seed}-"))
    with cluster() as c:
        for b in batch:
            c.infrastructure(b.name)
        c.infrastructure("neighbour")
        c.create("rollouts", _neighbour("neighbour"))
        c.controller.start()
        first = _wait(
            c, lambda s: set() if _healthy_at(s.get("neighbour"), None) else {"n"}, timeout
        )
        rev1 = ((first.get("neighbour") or {}).get("status") or {}).get("stableRevision")
        created = _create_all(c, report, [("rollouts", b) for b in batch])
        c.set_image("neighbour", "neighbour:2")

        def laggards(s: dict[str, dict[str, Any]]) -> set[str]:
            out = {b.name for b in created if not _judged(s.get(b.name) or {})}
            if not _healthy_at(s.get("neighbour"), rev1):
                out.add("neighbour")
            return out

        final = _wait(c, laggards, timeout + 0.1 * count)
        report.neighbours_promoted += int(_healthy_at(final.get("neighbour"), rev1))
        for b in created:
            _judge_rollout(b, final.get(b.name) or {}, report)
        report.controller_exits += int(c.controller.exited_by_itself())
        report.api_requests += c.requests_served()
        c.controller.stop()
        report.tracebacks += c.controller.tracebacks()
    if not report.neighbours_promoted:
        report.failures.append("neighbour: not promoted beside the bad bodies")
    report.seconds = time.monotonic() - started
    return report


def _judge_rollout(b: Body, doc: dict[str, Any], report: FuzzReport) -> None:
    spec_doc = {**b.doc, "metadata": {**b.doc["metadata"], "namespace": "ns"}}
    try:
        parse_rollout(spec_doc)
        invalid = False
    except Exception:
        invalid = True
    report.invalid += int(invalid)
    stalled = _stalled(doc)
    what = f"{b.name} ({'; '.join(b.mutations)})"
    if not _judged(doc):
        report.failures.append(f"{what}: no status (status={doc.get('status')!r})")
    elif invalid:
        if stalled is not None and FIELD.search(stalled):
            report.stalled_naming_field += 1
        else:
            report.failures.append(f"{what}: invalid but not Stalled naming a field: {stalled!r}")
    else:
        if stalled is not None and not stalled.strip():
            report.failures.append(f"{what}: Stalled with no message")
        else:
            report.valid_with_status += 1


def fuzz_templates(count: int, seed: int, timeout: float = 120.0) -> FuzzReport:
    """``count`` bad AnalysisTemplate bodies, each used by its own Rollout's analysis step."""
    report = FuzzReport(template_bodies=count, neighbours=1)
    started = time.monotonic()
    batch = list(bodies("AnalysisTemplate", count, seed, prefix=f"t{seed}-"))
    with cluster() as c:
        for b in batch:
            c.infrastructure(b.name)
        c.infrastructure("neighbour")
        c.create("rollouts", _neighbour("neighbour"))
        created = _create_all(c, report, [("analysistemplates", b) for b in batch])
        for b in created:
            c.create("rollouts", _template_rollout(b))
        c.controller.start()
        names = [b.name for b in created]
        first = _wait(
            c,
            lambda s: {n for n in [*names, "neighbour"] if not _healthy_at(s.get(n), None)},
            timeout + 0.1 * count,
        )
        rev1 = {n: ((first.get(n) or {}).get("status") or {}).get("stableRevision") for n in first}
        for n in [*names, "neighbour"]:
            c.set_image(n, f"{n}:2")

        def laggards(s: dict[str, dict[str, Any]]) -> set[str]:
            out = {n for n in names if not _template_outcome(s.get(n) or {})}
            if not _healthy_at(s.get("neighbour"), rev1.get("neighbour")):
                out.add("neighbour")
            return out

        # a mutation may delete ``interval`` (30 s by default): five measurements that all
        # error end the run on the fifth, about 150 s after it started
        final = _wait(c, laggards, timeout + 0.2 * count + 180.0)
        report.neighbours_promoted += int(
            _healthy_at(final.get("neighbour"), rev1.get("neighbour"))
        )
        for b in created:
            _judge_template(b, final.get(b.name) or {}, rev1.get(b.name), report)
        report.controller_exits += int(c.controller.exited_by_itself())
        report.api_requests += c.requests_served()
        c.controller.stop()
        report.tracebacks += c.controller.tracebacks()
    if not report.neighbours_promoted:
        report.failures.append("neighbour: not promoted beside the bad templates")
    report.seconds = time.monotonic() - started
    return report


def _inconclusive_pause(st: dict[str, Any]) -> bool:
    """Paused because the analysis ended without evidence either way: the template's default
    ``inconclusive: pause`` leaves the decision to a person (never a promotion)."""
    reasons = {p.get("reason") for p in st.get("pauseConditions") or []}
    return st.get("phase") == "Paused" and "InconclusiveAnalysis" in reasons


def _template_outcome(doc: dict[str, Any]) -> bool:
    """The template's Rollout has ended: aborted, promoted (a failure, judged below) or
    waiting for a person after an inconclusive analysis."""
    st = doc.get("status") or {}
    return st.get("phase") in ("Degraded", "Healthy") or _inconclusive_pause(st)


def _judge_template(b: Body, doc: dict[str, Any], rev1: str | None, report: FuzzReport) -> None:
    try:
        parse_template({**b.doc, "metadata": {**b.doc["metadata"], "namespace": "ns"}})
        invalid = False
    except Exception:
        invalid = True
    report.invalid += int(invalid)
    st = doc.get("status") or {}
    what = f"{b.name} ({'; '.join(b.mutations)})"
    message = str(st.get("message") or "")
    if _healthy_at(doc, rev1):
        report.promoted_without_evidence += 1
        report.failures.append(f"{what}: promoted with no Prometheus to measure with")
    elif not invalid and _inconclusive_pause(st):
        # a valid template whose measurements all errored without reaching its error limit
        # (say count 2 under consecutiveErrorLimit 4): no evidence, so no promotion
        report.valid_with_status += 1
    elif st.get("phase") != "Degraded":
        report.failures.append(f"{what}: not aborted: phase {st.get('phase')!r}: {message!r}")
    elif invalid:
        if "templateName" in message and FIELD.search(message):
            report.stalled_naming_field += 1
        else:
            report.failures.append(f"{what}: aborted without naming the field: {message!r}")
    else:
        report.valid_with_status += 1
