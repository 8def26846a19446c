"""The AnalysisRun lifecycle: create a run from its templates, tick it, stop it, prune history.

Everything a run needs is resolved once, when it is created: its templates are read, its queries
rendered with the owner's args, and each sequential metric's share of the owner's error budget
written into the rendered metric (``compare.alpha``), split by
:func:`analysis.stats.policy.split_budget` over every analysis of the owner. A tick then reads
only the run: no template is read again, and a run with nothing due is not written.

The owner (a Rollout, to ``rollouts``) is a :class:`~analysis.store.port.RunOwner`; what to run
comes as a :class:`RunRequest`, so this module knows nothing of Rollouts.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from analysis import templating
from analysis.api import (
    LABEL_REVISION,
    LABEL_ROLLOUT,
    AnalysisRun,
    AnalysisRunStatus,
    AnalysisTemplate,
    ArmQueries,
    ClusterAnalysisTemplate,
    InconclusivePolicy,
    InvalidAnalysisSpec,
    Metric,
    MetricResult,
    PrometheusSpec,
    RunKind,
)
from analysis.judge import ThresholdRule
from analysis.providers import web
from analysis.providers.job import JobProvider, Jobs
from analysis.providers.port import Arm, MetricProvider, Queries, Unavailable
from analysis.run_loop import (
    MetricPlan,
    MetricReport,
    RunSpecError,
    advance,
    is_final,
    overdue,
)
from analysis.stats.policy import BudgetClaim, BudgetError, split_budget
from analysis.store.port import AnalysisRunStore, RunOwner, SecretNotFound

log = logging.getLogger(__name__)

ProviderFactory = Callable[[PrometheusSpec, str, AnalysisRunStore], MetricProvider]
"""Builds the provider of one metric: (its ``provider.prometheus``, the namespace, the store for
Secrets). The operator passes a factory of real Prometheus clients; the simulator one that always
returns its simulated provider."""

WebFactory = Callable[[Metric, str, AnalysisRunStore], MetricProvider]
"""Builds a ``provider.web`` metric's provider from the whole metric (the simulator scripts its
answer from the threshold); default: real HTTP, :func:`real_web`."""


def real_web(metric: Metric, namespace: str, store: AnalysisRunStore) -> MetricProvider:
    """The controller's web provider: real HTTP (``analysis.providers.web``)."""
    assert metric.provider.web is not None
    return web.build(metric.provider.web, namespace, store)


DEFAULT_ALPHA = 0.05
"""An owner's false-abort budget, split over the union of its compared metrics."""

RUN_HISTORY = 5
"""Finished runs of older revisions kept per owner, successful and unsuccessful each (Argo
Rollouts' ``successfulRunHistoryLimit`` / ``unsuccessfulRunHistoryLimit`` default)."""

STALL_WINDOWS = 3
"""Measurement windows a run's status may lag behind its schedule before it counts as stuck."""
STALL_MIN_SECONDS = 60.0
"""However short its windows, a run is called stuck only after this long behind: with 1 s
windows, three windows are a few seconds of API trouble, which a brownout of the API server
causes and the controller rides out (the API-fault suite aborted healthy canaries on it)."""
STALL_TRANSIENT_SECONDS = 300.0
"""How long behind a run must be when its ticks fail only with the API server's transient errors
(5xx, 429, 409, timeouts, refused connections) before it counts as stuck: an API outage stops
every write for as long as it lasts, and a run that falls behind meanwhile catches up from
Prometheus' history once one tick succeeds. At ``STALL_MIN_SECONDS`` a 60 s brownout, and one
failing request right after it, aborted healthy canaries in the API-fault suite."""

UNSUCCESSFUL = frozenset({"Failed", "Error", "Inconclusive", "Stopped"})

ResultOf = Callable[[MetricReport], MetricResult]
"""How a tick's report of one metric is written into ``status.metrics`` (the evidence record's
owner supplies it)."""


class Unresolved(Exception):
    """A template, argument or metric that cannot be run; the message names the field."""


@dataclass(frozen=True)
class TemplateRef:
    """One template an analysis names (``cluster_scope``: a ClusterAnalysisTemplate)."""

    name: str
    cluster_scope: bool = False


@dataclass(frozen=True)
class Analysis:
    """The templates of one analysis and the args its owner gives them.

    ``background`` analyses keep their own e-processes; the others of one revision and attempt
    (steps, pre- and post-promotion) chain theirs, so evidence accumulates across them."""

    templates: tuple[TemplateRef, ...]
    args: Mapping[str, str] = field(default_factory=dict)
    background: bool = False


@dataclass(frozen=True)
class RunRequest:
    """A run to create: which analysis, for whom, and every analysis sharing its error budget."""

    owner: RunOwner
    name: str
    revision: str
    attempt: int
    kind: RunKind
    step_index: int | None
    analysis: Analysis
    budget: tuple[Analysis, ...]
    """Every analysis of the owner (this one included): their metrics share one alpha."""
    builtins: Mapping[str, str]
    in_flight: frozenset[str] = frozenset()
    """Runs the owner still waits on, never pruned."""
    canary_pods: int | None = None
    """The canary's pod count the run judges with (the smallest over the steps it spans), for
    metrics that judge pods as the sampling unit without stating it (``compare.canaryPods``);
    None: the owner does not know it, and such a metric is :class:`Unresolved`."""


def _epoch(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _age(run: AnalysisRun) -> tuple[datetime, str]:
    """Sort key, newest last: start time (Sluice always sets it); the name breaks ties."""
    at = run.status.started_at if run.status is not None else None
    return (at or datetime.min.replace(tzinfo=UTC), run.metadata.name)


# ------------------------------------------------------------------------------ the budget


def budget_claims(
    analyses: Sequence[tuple[Analysis, Sequence[AnalysisTemplate | ClusterAnalysisTemplate]]],
) -> list[BudgetClaim]:
    """What each sequential metric of these analyses asks of the budget, naming its field.

    A metric judged both by a background analysis and by the step chain counts two uses."""
    chains: dict[str, set[bool]] = {}
    found: list[tuple[str, float | None, str, bool]] = []
    for analysis, templates in analyses:
        for template in templates:
            for j, m in enumerate(template.spec.metrics):
                if m.compare is None or m.compare.method != "sequential":
                    continue
                where = f"template {template.metadata.name}: spec.metrics[{j}].compare.alpha"
                found.append((m.name, m.compare.alpha, where, analysis.background))
                chains.setdefault(m.name, set()).add(analysis.background)
    return [BudgetClaim(n, a, where, len(chains[n])) for n, a, where, _ in found]


def shares(
    analyses: Sequence[tuple[Analysis, Sequence[AnalysisTemplate | ClusterAnalysisTemplate]]],
    alpha: float,
) -> dict[str, float]:
    """Each sequential metric's alpha per e-process; raises :class:`BudgetError` naming the field."""
    return split_budget(budget_claims(analyses), alpha)


# ------------------------------------------------------------------------------ the lifecycle


class RunLifecycle:
    """Creates, ticks, stops and prunes the AnalysisRuns of owners, in one store.

    A user's mistake is never a crash: a missing template, a missing arg, an invalid metric or
    an overspent budget is :class:`Unresolved` at creation (its message names the field, and
    becomes the owner's Error verdict), or ends the run in ``Error`` at a tick.
    """

    def __init__(
        self,
        store: AnalysisRunStore,
        provider_factory: ProviderFactory,
        clock: Callable[[], float],
        *,
        alpha: float = DEFAULT_ALPHA,
        run_history: int = RUN_HISTORY,
        result_of: ResultOf,
        web_factory: WebFactory = real_web,
        jobs: Jobs | None = None,
    ) -> None:
        if run_history < 0:
            raise ValueError(f"run_history={run_history}: must be >= 0")
        self.store = store
        self.provider_factory = provider_factory
        self.web_factory = web_factory
        self.jobs = jobs
        """Where ``provider.job`` metrics run their Jobs; None: such metrics err, saying so."""
        self.clock = clock
        self.alpha = alpha
        self.run_history = run_history
        self.result_of = result_of

    # -------------------------------------------------------------------------- reading
    def runs(self, owner: RunOwner) -> list[AnalysisRun]:
        """Every run of ``owner``: one list, the only read a tick of an idle owner needs."""
        return self.store.list_runs(owner)

    # -------------------------------------------------------------------------- creating
    def create(self, request: RunRequest) -> AnalysisRun:
        """The run of ``request`` (an existing one of that name is returned as it is), then a prune."""
        ns = request.owner.namespace
        existing = self.store.get_run(ns, request.name)
        if existing is not None:
            return self.repair(existing) if incomplete(existing) else existing
        templates = self._templates(ns, request.analysis)
        metrics, args, policy = resolve(request.analysis, templates, request.builtins)
        try:
            alphas = shares(self._budget(request, templates), self.alpha)
        except BudgetError as e:
            raise Unresolved(str(e)) from None
        state: dict[str, Any] = {}
        if request.kind != "background":
            state["tests"] = self.inherited(request.owner, request.revision, request.attempt)
        run = AnalysisRun.model_validate(
            {
                "metadata": {
                    "name": request.name,
                    "namespace": ns,
                    "labels": {
                        LABEL_ROLLOUT: request.owner.name,
                        LABEL_REVISION: request.revision,
                    },
                },
                "spec": {
                    "rollout": request.owner.name,
                    "revision": request.revision,
                    "attempt": request.attempt,
                    "kind": request.kind,
                    "stepIndex": request.step_index,
                    "args": [{"name": k, "value": v} for k, v in sorted(args.items())],
                    "metrics": [
                        _with_share(_with_pods(m, request.canary_pods), alphas).wire()
                        for m in metrics
                    ],
                    "inconclusive": policy,
                    "alpha": self.alpha,
                },
                "status": {"phase": "Running", "startedAt": _epoch(self.clock()), "state": state},
            }
        )
        created = self.store.create_run(request.owner, run)
        try:
            self.prune(request.owner, (request.revision, request.attempt), request.in_flight)
        except Exception as e:  # housekeeping: never fail the analysis because of it
            log.warning("AnalysisRuns of %s/%s not pruned: %s", ns, request.owner.name, e)
        return created

    def _templates(
        self, namespace: str, analysis: Analysis
    ) -> list[AnalysisTemplate | ClusterAnalysisTemplate]:
        return [self._template(namespace, t, i) for i, t in enumerate(analysis.templates)]

    def _template(
        self, namespace: str, ref: TemplateRef, index: int
    ) -> AnalysisTemplate | ClusterAnalysisTemplate:
        try:
            template = self.store.get_template(namespace, ref.name, ref.cluster_scope)
        except InvalidAnalysisSpec as e:
            # a template someone applied without the CRD's validation (or an older schema)
            raise Unresolved(f"templates[{index}].templateName: {ref.name}: {e}") from None
        if template is None:
            kind = (
                "ClusterAnalysisTemplate" if ref.cluster_scope else f"AnalysisTemplate {namespace}/"
            )
            raise Unresolved(f"templates[{index}].templateName: {kind}{ref.name} not found")
        return template

    def _budget(
        self,
        request: RunRequest,
        own: Sequence[AnalysisTemplate | ClusterAnalysisTemplate],
    ) -> list[tuple[Analysis, Sequence[AnalysisTemplate | ClusterAnalysisTemplate]]]:
        """Every analysis of the owner with its templates, each template read once.

        Templates of other analyses that do not resolve are left out: their own run reports it."""
        ns = request.owner.namespace
        known: dict[TemplateRef, AnalysisTemplate | ClusterAnalysisTemplate | None] = dict(
            zip(request.analysis.templates, own, strict=True)
        )
        out: list[tuple[Analysis, Sequence[AnalysisTemplate | ClusterAnalysisTemplate]]] = []
        for analysis in request.budget:
            templates = []
            for ref in analysis.templates:
                if ref not in known:
                    try:
                        known[ref] = self.store.get_template(ns, ref.name, ref.cluster_scope)
                    except InvalidAnalysisSpec:
                        known[ref] = None
                t = known[ref]
                if t is not None:
                    templates.append(t)
            out.append((analysis, templates))
        return out

    def inherited(
        self, owner: RunOwner, revision: str, attempt: int, *, but: str | None = None
    ) -> dict[str, Any]:
        """The e-processes of the latest step/pre/post run of this revision and attempt (other
        than the run named ``but``)."""
        chain = [
            (run.status.started_at, run.status.state.get("tests", {}))
            for run in self.store.list_runs(owner)
            if run.metadata.name != but
            and run.spec.revision == revision
            and run.spec.attempt == attempt
            and run.spec.kind != "background"
            and run.status is not None
            and run.status.started_at is not None
        ]
        if not chain:
            return {}
        return dict(max(chain, key=lambda c: c[0])[1])

    # -------------------------------------------------------------------------- pruning
    def prune(
        self, owner: RunOwner, current: tuple[str, int], in_flight: frozenset[str] = frozenset()
    ) -> list[str]:
        """Delete the owner's runs beyond its history limit; returns the names deleted.

        Called when a run is created: that is when the count grows, it happens a bounded
        number of times per revision, and it costs one list. Kept always: every run of the
        ``current`` revision and attempt (the engine and the e-process chain read them), every
        run not finished (``Pending``/``Running``, or no status yet), and every run the owner
        still waits on (``in_flight``: it would otherwise be recreated from scratch). Of the
        rest, the newest ``run_history`` successful and the newest ``run_history`` unsuccessful
        runs (by start time) are kept, so a past failure stays inspectable however many
        successes followed it.
        """
        finished: dict[bool, list[AnalysisRun]] = {True: [], False: []}
        for run in self.store.list_runs(owner):
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
                self._clean_up_jobs(run)
                self.store.delete_run(owner.namespace, run.metadata.name)
                deleted.append(run.metadata.name)
        if deleted:
            log.info(
                "AnalysisRuns of %s/%s beyond the history limit deleted: %s",
                owner.namespace,
                owner.name,
                ", ".join(deleted),
            )
        return deleted

    # -------------------------------------------------------------------------- repairing
    def repair(self, run: AnalysisRun) -> AnalysisRun:
        """Write the status a run should have had from its creation, from what its spec holds.

        A run is created in two requests (the API server drops ``status`` on create); when the
        second never lands (a crash, a failing API server) the run has no status, and nothing
        would ever tick it. Its spec holds everything a run needs (rendered metrics, alphas,
        policy), so the repair starts it as :meth:`create` would have: Running from its creation
        time, from the e-processes of the chain it inherits (a step/pre/post run) or fresh.
        """
        now = self.clock()
        status = run.status
        started = status.started_at if status is not None else None
        if started is None:
            created = _created_at(run)
            started = _epoch(created if created is not None and created <= now else now)
        state = dict(status.state) if status is not None else {}
        if run.spec.kind != "background" and "tests" not in state:
            owner = RunOwner(run.metadata.namespace or "default", run.spec.rollout)
            state["tests"] = self.inherited(
                owner, run.spec.revision, run.spec.attempt, but=run.metadata.name
            )
        phase = status.phase if status is not None and status.phase != "Pending" else "Running"
        repaired = AnalysisRunStatus(
            phase=phase,
            message=status.message if status is not None else "",
            started_at=started,
            finished_at=status.finished_at if status is not None else None,
            metrics=list(status.metrics) if status is not None else [],
            state=state,
        )
        log.warning(
            "AnalysisRun %s/%s was incomplete (%s): status written from its spec",
            run.metadata.namespace,
            run.metadata.name,
            "no status" if status is None else "no start time",
        )
        return self.store.update_run_status(run.model_copy(update={"status": repaired}))

    def stalled(
        self,
        run: AnalysisRun,
        windows: int = STALL_WINDOWS,
        min_seconds: float = STALL_MIN_SECONDS,
    ) -> str | None:
        """Why ``run`` is stuck (its status lags more than ``windows`` measurement windows, and
        more than ``min_seconds``, behind its schedule, or it has had no status for as long), or
        None while it keeps up.

        A tick that succeeds always catches up (up to ``CATCH_UP`` windows), so a run found this
        far behind is one whose ticks fail: a status that cannot be written, a store that cannot
        be read. The owner reports it as the run's Error verdict rather than wait on it forever.
        """
        status = run.status
        if status is not None and (is_final(status.phase) or status.state.get("stopped")):
            return None
        now = self.clock()
        try:
            plans = [plan_metric(m, i) for i, m in enumerate(run.spec.metrics)]
        except (RunSpecError, ValueError):
            return None  # the tick reports it as the run's Error
        if status is None or status.started_at is None:
            created = _created_at(run)
            if created is None or not plans:
                return None
            grace = max(p.initial_delay + windows * p.interval for p in plans)
            if now - created <= max(grace, min_seconds):
                return None
            return (
                f"AnalysisRun {run.metadata.name} has had no status for {now - created:.0f}s "
                "(its status could not be written)"
            )
        behind = overdue(plans, status.state, start=status.started_at.timestamp(), now=now)
        interval = {p.name: p.interval for p in plans}
        late = [
            (name, n)
            for name, n in behind.items()
            if n > windows and n * interval.get(name, 0.0) > min_seconds
        ]
        if not late:
            return None
        return f"AnalysisRun {run.metadata.name} made no progress: " + ", ".join(
            f"metric {name!r} is {n} measurement windows behind its schedule" for name, n in late
        )

    # -------------------------------------------------------------------------- stopping
    def stop(self, namespace: str, name: str) -> None:
        """End a run without a verdict (the owner no longer waits on it)."""
        run = self.store.get_run(namespace, name)
        if run is None or run.status is None or is_final(run.status.phase):
            return
        run.status.state = {**run.status.state, "stopped": True}
        run.status.phase = "Stopped"
        run.status.finished_at = _epoch(self.clock())
        run.status.message = "stopped by Sluice before a verdict"
        self.store.update_run_status(run)
        self._clean_up_jobs(run)

    # -------------------------------------------------------------------------- jobs
    def _job_provider(self, run: AnalysisRun, metric: Metric) -> MetricProvider:
        assert metric.provider.job is not None
        if self.jobs is None:
            return Unavailable("job metrics need a cluster: this controller runs no Jobs")
        labels = {LABEL_ROLLOUT: run.spec.rollout, LABEL_REVISION: run.spec.revision}
        return JobProvider(
            metric.provider.job,
            namespace=run.metadata.namespace or "default",
            run=run.metadata.name,
            run_uid=run.metadata.uid or "",
            metric=metric.name,
            labels=labels,
            jobs=self.jobs,
        )

    def _clean_up_jobs(self, run: AnalysisRun) -> None:
        """Delete the Jobs of a finished or stopped run (their pods go with them); a failure is
        logged, never fatal: the run's ownerReference lets garbage collection remove them."""
        if self.jobs is None or not any(m.provider.job for m in run.spec.metrics):
            return
        try:
            self.jobs.delete_jobs(run.metadata.namespace or "default", run.metadata.name)
        except Exception as e:  # cleanup is best effort; GC is the backstop
            log.warning("could not delete the Jobs of AnalysisRun %s: %s", run.metadata.name, e)

    # -------------------------------------------------------------------------- ticking
    def tick(
        self,
        run: AnalysisRun,
        weight_changes: Sequence[float] = (),
        shares: Sequence[tuple[float, float]] = (),
    ) -> AnalysisRun:
        """Take the measurements that came due, judge, decide; write status only if it changed.

        ``weight_changes``: when the owner's canary weight changed (epoch seconds; the newest is
        enough, the run remembers the others), so no measurement window straddles one.
        ``shares``: the canary's asked share of requests (0-1) from a time on, ``(since,
        share)``; the newest is enough, the run remembers the others. The sample-ratio guard
        compares each window's request counts with it (none given: the guard stays silent)."""
        if incomplete(run):
            run = self.repair(run)
        # a copy: when the write below fails, the caller keeps the run as stored, never a verdict
        # nobody recorded (the engine must not act on it, and the next tick redoes it)
        run = run.model_copy(deep=True)
        status = run.status
        if status is None or is_final(status.phase) or status.state.get("stopped"):
            return run
        before = status.model_copy(deep=True)
        now = self.clock()
        start = (status.started_at or _epoch(now)).timestamp()
        namespace = run.metadata.namespace or "default"
        try:
            plans = [plan_metric(m, i) for i, m in enumerate(run.spec.metrics)]
            for plan in plans:
                plan.check()
            alphas = {p.name: _share_of(p) for p in plans if p.judgement == "sequential"}
        except (RunSpecError, ValueError) as e:
            status.phase, status.message = "Error", str(e)
            status.finished_at = _epoch(now)
            return self.store.update_run_status(run)
        providers: dict[str, MetricProvider] = {}

        def provider_for(plan: MetricPlan) -> MetricProvider:
            if plan.name not in providers:
                spec = run.spec.metrics[[m.name for m in run.spec.metrics].index(plan.name)]
                try:
                    if spec.provider.job is not None:
                        providers[plan.name] = self._job_provider(run, spec)
                    elif spec.provider.web is not None:
                        providers[plan.name] = self.web_factory(spec, namespace, self.store)
                    else:
                        assert spec.provider.prometheus is not None
                        providers[plan.name] = self.provider_factory(
                            spec.provider.prometheus, namespace, self.store
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
            budget=run.spec.alpha,
            kind=run.spec.kind,
            inconclusive=run.spec.inconclusive,
            weight_changes=weight_changes,
            shares=shares,
        )
        status.phase = result.phase
        status.message = result.message
        status.state = result.state
        status.metrics = [self.result_of(r) for r in result.metrics]
        if is_final(result.phase):
            status.finished_at = _epoch(now)
            self._clean_up_jobs(run)
        if _as_written(status) == _as_written(before):
            return run  # nothing came due: nothing to write
        return self.store.update_run_status(run)


def _as_written(status: Any) -> str:
    """The status as the API stores it: a status write is a merge patch, which drops every null
    (the run loop's state holds some), so a status compared with its nulls never equals the
    one read back, and every tick would write an unchanged status."""
    return json.dumps(_without_nulls(status.model_dump(mode="json", by_alias=True)), sort_keys=True)


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def incomplete(run: AnalysisRun) -> bool:
    """Whether the run lacks what every run is created with: a status with a start time."""
    status = run.status
    if status is None:
        return True
    return status.started_at is None and not is_final(status.phase) and status.phase != "Stopped"


def _created_at(run: AnalysisRun) -> float | None:
    """The run's ``metadata.creationTimestamp`` (set by an API server), as epoch seconds."""
    raw = (run.metadata.model_extra or {}).get("creationTimestamp")
    if not isinstance(raw, str):
        return None
    try:
        return datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _share_of(plan: MetricPlan) -> float:
    if plan.alpha is None:
        raise RunSpecError(
            f"{plan.field_path}.compare.alpha: not set; a run is created with each metric's "
            "share of the error budget (recreate the run)"
        )
    return plan.alpha


def _with_pods(metric: Metric, canary_pods: int | None) -> Metric:
    """The metric with the canary's pod count as its ``compare.canaryPods`` when it judges pods
    as the sampling unit without stating the count (the template's count overrides); recorded
    in the run, so its evidence shows the count used."""
    c = metric.compare
    if c is None or not metric.judges_pods or c.canary_pods is not None:
        return metric
    if (canary_pods is None or canary_pods < 1) and not c.pods_asked:
        # the default pod model, with no count to widen for: judge requests, and say so in
        # the run (podModel false), rather than fail an analysis nobody configured for pods
        return metric.model_copy(update={"compare": c.model_copy(update={"pod_model": False})})
    if canary_pods is None or canary_pods < 1:
        raise Unresolved(
            f"metric {metric.name!r}: compare.canaryPods: pods are the sampling unit "
            "(compare.podModel or compare.podSpread) but the owner gave no canary pod count; "
            "set compare.canaryPods in the template"
        )
    compare = c.model_copy(update={"canary_pods": canary_pods})
    return metric.model_copy(update={"compare": compare})


def _with_share(metric: Metric, alphas: Mapping[str, float]) -> Metric:
    """The metric with its share of the budget as its ``compare.alpha``."""
    if metric.compare is None or metric.compare.method != "sequential":
        return metric
    compare = metric.compare.model_copy(update={"alpha": alphas[metric.name]})
    return metric.model_copy(update={"compare": compare})


# ------------------------------------------------------------------------------ resolving


def resolve(
    analysis: Analysis,
    templates: Sequence[AnalysisTemplate | ClusterAnalysisTemplate],
    builtins: Mapping[str, str],
) -> tuple[list[Metric], dict[str, str], InconclusivePolicy]:
    """The rendered metrics, the args used and the strictest ``inconclusive`` policy."""
    given = dict(analysis.args)
    used: dict[str, str] = {}
    metrics: list[Metric] = []
    owner: dict[str, str] = {}
    policies: list[InconclusivePolicy] = []
    declared: set[str] = set(builtins)
    for ref, template in zip(analysis.templates, templates, strict=True):
        declared |= {a.name for a in template.spec.args}
        policies.append(template.spec.inconclusive)
        try:
            values = templating.resolve_args(
                template.spec.args, given, builtins=builtins, strict=False
            )
        except templating.TemplateError as e:
            raise Unresolved(f"template {ref.name}: {e}") from None
        for j, metric in enumerate(template.spec.metrics):
            if metric.name in owner:
                raise Unresolved(
                    f"template {ref.name}: spec.metrics[{j}].name "
                    f"{metric.name!r} is also a metric of template {owner[metric.name]}"
                )
            owner[metric.name] = ref.name
            metrics.append(render(metric, values, ref.name, j))
        used.update({a.name: values[a.name] for a in template.spec.args})
    unknown = sorted(set(given) - declared)
    if unknown:
        raise Unresolved(
            f"args {', '.join(map(repr, unknown))} given but declared by none of the "
            f"templates {', '.join(t.name for t in analysis.templates)}"
        )
    used.update(builtins)
    # the strictest policy of the templates: abort > pause > promote
    policy: InconclusivePolicy = (
        "abort" if "abort" in policies else "pause" if "pause" in policies else "promote"
    )
    return metrics, used, policy


def render(metric: Metric, values: Mapping[str, str], template: str, j: int) -> Metric:
    """The metric with its queries (or its URL, headers and body) rendered with ``values``."""
    if metric.provider.web is not None:
        return _render_web(metric, values, template, j)
    if metric.provider.job is not None:
        return metric  # a Job spec is used as written
    prom = metric.provider.prometheus
    assert prom is not None
    doc = metric.wire()
    p = doc["provider"]["prometheus"]
    try:
        if prom.query is not None:
            p["query"] = templating.render(prom.query, values)
        for arm in ("canary", "baseline"):
            for key, query in list((p.get(arm) or {}).items()):
                p[arm][key] = templating.render(query, values)
    except templating.TemplateError as e:
        raise Unresolved(
            f"template {template}: spec.metrics[{j}].provider.prometheus: {e}"
        ) from None
    return Metric.model_validate(doc)


def _render_web(metric: Metric, values: Mapping[str, str], template: str, j: int) -> Metric:
    doc = metric.wire()
    w = doc["provider"]["web"]
    where = "url"
    try:
        w["url"] = templating.render_url(w["url"], values)
        for i, header in enumerate(w.get("headers", [])):
            where = f"headers[{i}].value"
            if "value" in header:
                header["value"] = templating.render_header(header["value"], values)
        if "body" in w:
            where = "body"
            w["body"] = templating.render_json_body(w["body"], values)
    except templating.TemplateError as e:
        raise Unresolved(
            f"template {template}: spec.metrics[{j}].provider.web.{where}: {e}"
        ) from None
    return Metric.model_validate(doc)


def plan_metric(metric: Metric, index: int) -> MetricPlan:
    """The run loop's view of an API metric (durations in seconds, queries per arm)."""
    queries: dict[Arm, Queries] = {}
    if metric.provider.web is not None:
        # the web provider is built from the spec; the URL stands for the query in messages
        queries["absolute"] = Queries(value=metric.provider.web.url)
    if metric.provider.job is not None:
        queries["absolute"] = Queries(value=f"job {metric.name}")
    prom = metric.provider.prometheus
    if prom is not None and prom.query is not None:
        queries["absolute"] = Queries(value=prom.query)
    arms: tuple[tuple[Arm, ArmQueries | None], ...] = (
        ("canary", None if prom is None else prom.canary),
        ("baseline", None if prom is None else prom.baseline),
    )
    for arm_name, arm in arms:
        if arm is not None:
            queries[arm_name] = Queries(
                events=arm.events,
                total=arm.total,
                buckets=arm.buckets,
                value=arm.value,
                # pods as the sampling unit: the counts may come one series per pod
                pod_label="pod" if metric.judges_pods else None,
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
    if metric.judges_pods and c.canary_pods is None:
        raise RunSpecError(
            f"spec.metrics[{index}].compare.canaryPods: not set; a run that judges pods as the "
            "sampling unit is created with the canary's pod count (recreate the run)"
        )
    return MetricPlan(
        **common,
        judgement=c.method,
        direction=c.direction,
        tolerance=c.tolerance,
        alpha=c.alpha,
        critical=c.critical,
        edges=None if c.edges is None else tuple(c.edges),
        canary_pods=c.canary_pods,
        pod_spread=c.pod_spread,
        latency_increase=None if c.latency_tolerance is None else c.latency_tolerance.fraction,
        latency_quantile=0.9 if c.latency_tolerance is None else c.latency_tolerance.quantile,
    )
