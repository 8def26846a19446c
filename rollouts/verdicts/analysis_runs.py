"""Real analysis behind the engine's ``VerdictSource`` port: AnalysisRuns judged by statistics.

The engine only says "start analysis NAME for these templates" and reads "what did NAME conclude".
This module turns that into AnalysisRun objects (resolved templates, rendered arguments) kept in an
:class:`AnalysisRunStore` (Kubernetes in the operator, memory in the simulator and tests), and
advances each running run by one tick per reconcile through a metric provider.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from analysis import templating
from analysis.api import (
    LABEL_REVISION,
    LABEL_ROLLOUT,
    AnalysisRun,
    AnalysisTemplate,
    ArmQueries,
    ClusterAnalysisTemplate,
    InconclusivePolicy,
    InvalidAnalysisSpec,
    Metric,
    PrometheusSpec,
    RunKind,
)
from analysis.judge import ThresholdRule
from analysis.providers.port import Arm, MetricProvider, Queries, Unavailable
from analysis.run_loop import MetricPlan, RunSpecError, advance, is_final
from analysis.store.port import AnalysisRunStore, RunOwner, SecretNotFound
from rollouts.api.rollout import (
    AnalysisRef,
    Rollout,
    RolloutStatus,
    TemplateRef,
)
from rollouts.engine.context import other, services_of
from rollouts.engine.plan import AnalysisObservation, StartAnalysis
from rollouts.verdicts.evidence_status import metric_result, metric_summaries

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------ the verdict source

ProviderFactory = Callable[[PrometheusSpec, str, AnalysisRunStore], MetricProvider]
"""Builds the provider of one metric: (its ``provider.prometheus``, the namespace, the store for
Secrets). The operator passes a factory of real Prometheus clients; the simulator one that always
returns its simulated provider."""

ROLLOUT_ALPHA = 0.05
"""The rollout's false-abort budget, split over the union of its compared metrics."""

RUN_HISTORY = 5
"""Finished runs of older revisions kept per Rollout, successful and unsuccessful each (Argo
Rollouts' ``successfulRunHistoryLimit`` / ``unsuccessfulRunHistoryLimit`` default)."""

UNSUCCESSFUL = frozenset({"Failed", "Error", "Inconclusive", "Stopped"})


class _Unresolved(Exception):
    """A template, argument or metric that cannot be run; the message names the field."""


def owner_of(rollout: Rollout) -> RunOwner:
    """The Rollout as its runs' owner in the store."""
    return RunOwner(rollout.metadata.namespace, rollout.metadata.name, rollout.metadata.uid or "")


def _epoch(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _age(run: AnalysisRun) -> tuple[datetime, str]:
    """Sort key, newest last: start time (Sluice always sets it); the name breaks ties."""
    at = run.status.started_at if run.status is not None else None
    return (at or datetime.min.replace(tzinfo=UTC), run.metadata.name)


class AnalysisVerdicts:
    """The engine's :class:`~rollouts.verdicts.VerdictSource`, backed by AnalysisRuns.

    ``start`` resolves the templates of the analysis (namespaced or cluster-scoped), renders
    every query with the Rollout's args and the built-in ones, and creates the AnalysisRun;
    ``observe`` ticks every unfinished run of the Rollout (taking the measurements that came due)
    and reports verdicts with each metric's evidence; ``stop`` ends a run without a verdict.

    One error budget per rollout: each compared metric's alpha is its Bonferroni share of
    ``ROLLOUT_ALPHA`` over the union of the metrics of *all* the Rollout's analysis refs (steps,
    background, pre/post-promotion), so it is the same in every run; and a new step (or
    post-promotion) run of the same revision and attempt starts from the e-processes the previous
    such run left in its ``status.state``. Evidence therefore accumulates across steps under one
    Ville bound. A background run keeps its own e-processes (it runs alongside the steps, so
    sharing would count the same windows twice); a metric named in both spends its alpha twice.

    Nothing here raises for a user's mistake: a missing template, a missing arg or an invalid
    metric gives an ``Error`` verdict whose message names it (the engine then aborts with it).

    Run history is bounded: each time a run is created, finished runs of other revisions and
    attempts beyond the newest ``run_history`` successful and ``run_history`` unsuccessful ones
    are deleted (see :meth:`prune`).
    """

    def __init__(
        self,
        store: AnalysisRunStore,
        provider_factory: ProviderFactory,
        clock: Callable[[], float],
        *,
        alpha: float = ROLLOUT_ALPHA,
        run_history: int = RUN_HISTORY,
    ) -> None:
        if run_history < 0:
            raise ValueError(f"run_history={run_history}: must be >= 0")
        self.store = store
        self.provider_factory = provider_factory
        self.clock = clock
        self.alpha = alpha
        self.run_history = run_history

    # -------------------------------------------------------------------------- the port
    def start(self, rollout: Rollout, request: StartAnalysis) -> None:
        # an unresolvable analysis is reported by observe, every time, until the engine acts on it
        with contextlib.suppress(_Unresolved):
            self._create(rollout, request.name, request.kind, request.step_index)

    def stop(self, rollout: Rollout, name: str) -> None:
        run = self.store.get_run(rollout.metadata.namespace, name)
        if run is None or run.status is None or is_final(run.status.phase):
            return
        run.status.state = {**run.status.state, "stopped": True}
        run.status.phase = "Stopped"
        run.status.finished_at = _epoch(self.clock())
        run.status.message = "stopped by Sluice before a verdict"
        self.store.update_run_status(run)

    def observe(self, rollout: Rollout) -> dict[str, AnalysisObservation]:
        out: dict[str, AnalysisObservation] = {}
        runs = {r.metadata.name: r for r in self.store.list_runs(owner_of(rollout))}
        st = rollout.status
        for rec in st.analysis_runs if st is not None else []:
            if rec.name in runs or rec.phase not in ("Pending", "Running"):
                continue
            try:
                runs[rec.name] = self._create(rollout, rec.name, rec.kind, rec.step_index)
            except _Unresolved as e:
                out[rec.name] = AnalysisObservation("Error", str(e))
        for name, run in runs.items():
            status = run.status
            if status is None or status.phase == "Stopped" or status.state.get("stopped"):
                continue
            if not is_final(status.phase):
                run = self._tick(rollout, run)
                status = run.status
                assert status is not None
            phase = status.phase
            if phase == "Stopped":  # a tick never stops a run; only stop() does
                continue
            out[name] = AnalysisObservation(phase, status.message, metric_summaries(run))
        return out

    # -------------------------------------------------------------------------- creating runs
    def _create(
        self, rollout: Rollout, name: str, kind: RunKind, step_index: int | None
    ) -> AnalysisRun:
        existing = self.store.get_run(rollout.metadata.namespace, name)
        if existing is not None:
            return existing
        ref = _ref_for(rollout, kind, step_index)
        st = rollout.status or RolloutStatus()
        builtins = builtin_args(rollout)
        metrics, args, policy = self._resolve(rollout, ref, builtins)
        now = self.clock()
        state: dict[str, Any] = {}
        if kind != "background":
            state["tests"] = self._inherited(rollout, st.current_revision, st.attempt or 1)
        run = AnalysisRun.model_validate(
            {
                "metadata": {
                    "name": name,
                    "namespace": rollout.metadata.namespace,
                    "labels": {
                        LABEL_ROLLOUT: rollout.metadata.name,
                        LABEL_REVISION: st.current_revision or "unknown",
                    },
                },
                "spec": {
                    "rollout": rollout.metadata.name,
                    "revision": st.current_revision or "unknown",
                    "attempt": st.attempt or 1,
                    "kind": kind,
                    "stepIndex": step_index,
                    "args": [{"name": k, "value": v} for k, v in sorted(args.items())],
                    "metrics": [m.wire() for m in metrics],
                    "inconclusive": policy,
                    "alpha": self.alpha,
                },
                "status": {"phase": "Running", "startedAt": _epoch(now), "state": state},
            }
        )
        created = self.store.create_run(owner_of(rollout), run)
        try:
            self.prune(rollout)
        except Exception as e:  # housekeeping: never fail the analysis because of it
            log.warning(
                "AnalysisRuns of %s/%s not pruned: %s",
                rollout.metadata.namespace,
                rollout.metadata.name,
                e,
            )
        return created

    def prune(self, rollout: Rollout) -> list[str]:
        """Delete the Rollout's runs beyond its history limit; returns the names deleted.

        Called when a run is created: that is when the count grows, it happens a bounded
        number of times per revision, and it costs one list. Kept always: every run of the
        current revision and attempt (the engine and the e-process chain read them), every run
        not finished (``Pending``/``Running``, or no status yet), and every run the Rollout's
        status still lists as in flight (``observe`` would otherwise recreate it from scratch).
        Of the rest, the newest ``run_history`` successful and the newest ``run_history``
        unsuccessful runs (by start time) are kept, so a past failure stays
        inspectable however many successes followed it.
        """
        st = rollout.status or RolloutStatus()
        current = (st.current_revision or "unknown", st.attempt or 1)
        in_flight = {r.name for r in st.analysis_runs if r.phase in ("Pending", "Running")}
        finished: dict[bool, list[AnalysisRun]] = {True: [], False: []}
        for run in self.store.list_runs(owner_of(rollout)):
            phase = run.status.phase if run.status is not None else None
            if (
                (run.spec.revision, run.spec.attempt) == current
                or run.metadata.name in in_flight
                or (phase != "Successful" and phase not in UNSUCCESSFUL)
            ):
                continue
            finished[phase == "Successful"].append(run)
        deleted: list[str] = []
        for runs in finished.values():
            runs.sort(key=_age, reverse=True)
            for run in runs[self.run_history :]:
                self.store.delete_run(rollout.metadata.namespace, run.metadata.name)
                deleted.append(run.metadata.name)
        if deleted:
            log.info(
                "AnalysisRuns of %s/%s beyond the history limit deleted: %s",
                rollout.metadata.namespace,
                rollout.metadata.name,
                ", ".join(deleted),
            )
        return deleted

    def _resolve(
        self, rollout: Rollout, ref: AnalysisRef, builtins: Mapping[str, str]
    ) -> tuple[list[Metric], dict[str, str], InconclusivePolicy]:
        given = {a.name: a.value or "" for a in ref.args or []}
        used: dict[str, str] = {}
        metrics: list[Metric] = []
        owner: dict[str, str] = {}
        policies: list[InconclusivePolicy] = []
        declared: set[str] = set(builtins)
        for i, tref in enumerate(ref.templates):
            template = self._template(rollout, tref, i)
            declared |= {a.name for a in template.spec.args}
            policies.append(template.spec.inconclusive)
            try:
                values = templating.resolve_args(
                    template.spec.args, given, builtins=builtins, strict=False
                )
            except templating.TemplateError as e:
                raise _Unresolved(f"template {tref.template_name}: {e}") from None
            for j, metric in enumerate(template.spec.metrics):
                if metric.name in owner:
                    raise _Unresolved(
                        f"template {tref.template_name}: spec.metrics[{j}].name "
                        f"{metric.name!r} is also a metric of template {owner[metric.name]}"
                    )
                owner[metric.name] = tref.template_name
                metrics.append(self._render(metric, values, tref.template_name, j))
            used.update({a.name: values[a.name] for a in template.spec.args})
        unknown = sorted(set(given) - declared)
        if unknown:
            raise _Unresolved(
                f"args {', '.join(map(repr, unknown))} given but declared by none of the "
                f"templates {', '.join(t.template_name for t in ref.templates)}"
            )
        used.update(builtins)
        # the strictest policy of the templates: abort > pause > promote
        policy: InconclusivePolicy = (
            "abort" if "abort" in policies else "pause" if "pause" in policies else "promote"
        )
        return metrics, used, policy

    def _template(
        self, rollout: Rollout, tref: TemplateRef, index: int
    ) -> AnalysisTemplate | ClusterAnalysisTemplate:
        ns = rollout.metadata.namespace
        try:
            template = self.store.get_template(ns, tref.template_name, tref.cluster_scope)
        except InvalidAnalysisSpec as e:
            # a template someone applied without the CRD's validation (or an older schema)
            raise _Unresolved(
                f"templates[{index}].templateName: {tref.template_name}: {e}"
            ) from None
        if template is None:
            kind = "ClusterAnalysisTemplate" if tref.cluster_scope else f"AnalysisTemplate {ns}/"
            raise _Unresolved(
                f"templates[{index}].templateName: {kind}{tref.template_name} not found"
            )
        return template

    @staticmethod
    def _render(metric: Metric, values: Mapping[str, str], template: str, j: int) -> Metric:
        prom = metric.provider.prometheus
        doc = metric.wire()
        p = doc["provider"]["prometheus"]
        try:
            if prom.query is not None:
                p["query"] = templating.render(prom.query, values)
            for arm in ("canary", "baseline"):
                for key, query in list((p.get(arm) or {}).items()):
                    p[arm][key] = templating.render(query, values)
        except templating.TemplateError as e:
            raise _Unresolved(
                f"template {template}: spec.metrics[{j}].provider.prometheus: {e}"
            ) from None
        return Metric.model_validate(doc)

    def _inherited(self, rollout: Rollout, revision: str | None, attempt: int) -> dict[str, Any]:
        """The e-processes of the latest step/pre/post run of this revision and attempt."""
        chain = [
            (run.status.started_at, run.status.state.get("tests", {}))
            for run in self.store.list_runs(owner_of(rollout))
            if run.spec.revision == revision
            and run.spec.attempt == attempt
            and run.spec.kind != "background"
            and run.status is not None
            and run.status.started_at is not None
        ]
        if not chain:
            return {}
        return dict(max(chain, key=lambda c: c[0])[1])

    def alphas(self, rollout: Rollout) -> dict[str, float]:
        """Each sequential metric's share of the rollout's alpha, over all its analysis refs.

        Templates that do not resolve are left out (their own run reports the error)."""
        specs: dict[str, float | None] = {}
        for ref in _all_refs(rollout):
            for tref in ref.templates:
                t = self.store.get_template(
                    rollout.metadata.namespace, tref.template_name, tref.cluster_scope
                )
                for m in t.spec.metrics if t is not None else []:
                    if m.compare is not None and m.compare.method == "sequential":
                        specs.setdefault(m.name, m.compare.alpha)
        explicit = sum(a for a in specs.values() if a is not None)
        rest = [n for n, a in specs.items() if a is None]
        left = max(self.alpha - explicit, 0.0)
        share = left / len(rest) if rest else 0.0
        return {n: (a if a is not None else share) for n, a in specs.items()}

    # -------------------------------------------------------------------------- ticking
    def _tick(self, rollout: Rollout, run: AnalysisRun) -> AnalysisRun:
        status = run.status
        assert status is not None
        now = self.clock()
        start = (status.started_at or _epoch(now)).timestamp()
        try:
            plans = [plan_metric(m, i) for i, m in enumerate(run.spec.metrics)]
            for plan in plans:
                plan.check()
            alphas = self.alphas(rollout)
            for plan in plans:
                if plan.judgement == "sequential" and alphas.get(plan.name, 0.0) <= 0.0:
                    alphas[plan.name] = plan.alpha or self.alpha / max(len(plans), 1)
        except (RunSpecError, ValueError) as e:
            status.phase, status.message = "Error", str(e)
            status.finished_at = _epoch(now)
            return self.store.update_run_status(run)
        providers: dict[str, MetricProvider] = {}

        def provider_for(plan: MetricPlan) -> MetricProvider:
            if plan.name not in providers:
                spec = run.spec.metrics[[m.name for m in run.spec.metrics].index(plan.name)]
                try:
                    providers[plan.name] = self.provider_factory(
                        spec.provider.prometheus, rollout.metadata.namespace, self.store
                    )
                except SecretNotFound as e:
                    providers[plan.name] = Unavailable(str(e))
            return providers[plan.name]

        result = advance(
            plans,
            status.state,
            start=start,
            now=now,
            provider_for=provider_for,
            alphas=alphas,
            kind=run.spec.kind,
            inconclusive=run.spec.inconclusive,
        )
        status.phase = result.phase
        status.message = result.message
        status.state = result.state
        status.metrics = [metric_result(r) for r in result.metrics]
        if is_final(result.phase):
            status.finished_at = _epoch(now)
        return self.store.update_run_status(run)


def plan_metric(metric: Metric, index: int) -> MetricPlan:
    """The run loop's view of an API metric (durations in seconds, queries per arm)."""
    prom = metric.provider.prometheus
    queries: dict[Arm, Queries] = {}
    if prom.query is not None:
        queries["absolute"] = Queries(value=prom.query)
    arms: tuple[tuple[Arm, ArmQueries | None], ...] = (
        ("canary", prom.canary),
        ("baseline", prom.baseline),
    )
    for arm_name, arm in arms:
        if arm is not None:
            queries[arm_name] = Queries(
                events=arm.events, total=arm.total, buckets=arm.buckets, value=arm.value
            )
    common: dict[str, Any] = {
        "name": metric.name,
        "kind": metric.kind,
        "interval": float(metric.interval_seconds),
        "initial_delay": float(metric.initial_delay_seconds),
        "count": metric.count,
        "duration": None if metric.duration_seconds is None else float(metric.duration_seconds),
        "dry_run": metric.dry_run,
        "queries": queries,
        "field_path": f"spec.metrics[{index}]",
    }
    if metric.threshold is not None:
        t = metric.threshold
        rule = ThresholdRule(
            min=t.min,
            max=t.max,
            failure_limit=t.failure_limit,
            inconclusive_limit=t.inconclusive_limit,
            consecutive_error_limit=t.consecutive_error_limit,
            count=metric.count,
        )
        return MetricPlan(**common, judgement="threshold", threshold=rule)
    c = metric.compare
    assert c is not None
    return MetricPlan(
        **common,
        judgement=c.method,
        direction=c.direction,
        tolerance=c.tolerance,
        alpha=c.alpha,
        critical=c.critical,
        edges=None if c.edges is None else tuple(c.edges),
    )


def builtin_args(rollout: Rollout) -> dict[str, str]:
    """The args every run gets from its Rollout (blue-green: preview/active are canary/stable).

    The canary slot is the one running the revision under analysis: before a promotion the
    slot that is not stable, after it (post-promotion analysis) the new stable one."""
    st = rollout.status or RolloutStatus()
    stable_slot = st.stable_slot or "a"
    promoted = st.current_revision is not None and st.current_revision == st.stable_revision
    canary_slot = stable_slot if promoted else other(stable_slot)
    old_slot = other(canary_slot)
    old_revision = next((s.revision for s in st.slots if s.name == old_slot), None)
    stable_svc, canary_svc = services_of(rollout)
    name = rollout.metadata.name
    return {
        "rollout": name,
        "namespace": rollout.metadata.namespace,
        "canary-slot": f"{name}-{canary_slot}",
        "stable-slot": f"{name}-{stable_slot if not promoted else old_slot}",
        "canary-revision": st.current_revision or "",
        "stable-revision": (old_revision or "") if promoted else (st.stable_revision or ""),
        "canary-service": canary_svc,
        "stable-service": stable_svc,
    }


def _all_refs(rollout: Rollout) -> list[AnalysisRef]:
    refs: list[AnalysisRef] = []
    if rollout.canary is not None:
        refs += [s.analysis for s in rollout.canary.steps if s.analysis is not None]
        if rollout.canary.analysis is not None:
            refs.append(rollout.canary.analysis)
    if rollout.blue_green is not None:
        bg = rollout.blue_green
        refs += [r for r in (bg.pre_promotion_analysis, bg.post_promotion_analysis) if r]
    return refs


def _ref_for(rollout: Rollout, kind: RunKind, step_index: int | None) -> AnalysisRef:
    ref: AnalysisRef | None = None
    if rollout.canary is not None:
        c = rollout.canary
        if kind == "step" and step_index is not None and step_index < len(c.steps):
            ref = c.steps[step_index].analysis
        elif kind == "background":
            ref = c.analysis
    elif rollout.blue_green is not None:
        bg = rollout.blue_green
        ref = {
            "prePromotion": bg.pre_promotion_analysis,
            "postPromotion": bg.post_promotion_analysis,
        }.get(kind)
    if ref is None:
        raise _Unresolved(
            f"the Rollout has no {kind} analysis"
            + (f" at step {step_index + 1}" if step_index is not None else "")
        )
    return ref
