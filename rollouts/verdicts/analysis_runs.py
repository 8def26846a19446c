"""Real analysis behind the engine's ``VerdictSource`` port: AnalysisRuns judged by statistics.

A thin adapter. The run lifecycle (resolve templates, render args, split the error budget,
tick, stop, prune) is :class:`analysis.lifecycle.RunLifecycle`'s; this module maps the engine's
StartAnalysis/StopAnalysis and the Rollout (its built-in args, which analysis a run is, its
owner) to lifecycle calls, and reads the verdicts back for the engine.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from analysis.api import AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate, RunKind
from analysis.lifecycle import (
    DEFAULT_ALPHA,
    RUN_HISTORY,
    STALL_MIN_SECONDS,
    STALL_TRANSIENT_SECONDS,
    Analysis,
    ProviderFactory,
    RunLifecycle,
    RunRequest,
    TemplateRef,
    Unresolved,
    shares,
)
from analysis.stats.policy import BudgetError
from analysis.store.port import AnalysisRunStore, RunOwner
from analysis.store.retry import transient
from rollouts.api.rollout import AnalysisRef, CanaryStrategy, Rollout, RolloutStatus
from rollouts.engine.canary import reached_weight
from rollouts.engine.context import other, percent_of, services_of
from rollouts.engine.plan import AnalysisObservation, StartAnalysis
from rollouts.verdicts.evidence_status import metric_result, metric_summaries

__all__ = [
    "ROLLOUT_ALPHA",
    "RUN_HISTORY",
    "AnalysisVerdicts",
    "ProviderFactory",
    "budget_problem",
    "builtin_args",
    "canary_pods",
    "canary_share",
    "owner_of",
]

log = logging.getLogger(__name__)

ROLLOUT_ALPHA = DEFAULT_ALPHA
"""The rollout's false-abort budget, split over the union of its compared metrics."""


def owner_of(rollout: Rollout) -> RunOwner:
    """The Rollout as its runs' owner in the store."""
    return RunOwner(rollout.metadata.namespace, rollout.metadata.name, rollout.metadata.uid or "")


@dataclass
class _Ticked:
    """What the tick phase saw, for the observe phase of the same reconcile to read."""

    runs: dict[str, AnalysisRun] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    failed: dict[str, Exception] = field(default_factory=dict)
    """Runs whose tick raised (the store could not be written, say): name → the error."""


class AnalysisVerdicts:
    """The engine's :class:`~rollouts.verdicts.port.VerdictSource`, backed by AnalysisRuns.

    ``start`` creates the run of an analysis; ``tick`` (the reconcile's first phase, where all
    analysis writes happen) creates runs the Rollout waits on that are missing and advances every
    unfinished run; ``observe`` reads the verdicts with each metric's evidence, writing nothing;
    ``stop`` ends a run without a verdict.

    One error budget per rollout: each compared metric's alpha is its share of ``alpha`` over
    the union of the metrics of *all* the Rollout's analysis refs (steps, background,
    pre/post-promotion), split once when the run is created and kept in the run. A new step
    (or post-promotion) run of the same revision and attempt starts from the e-processes the
    previous such run left, so evidence accumulates across steps under one Ville bound. A
    background run keeps its own e-processes, so a metric named in both background and step
    analysis has its share split between the two: it draws once from the budget.

    Nothing here raises for a user's mistake: a missing template, a missing arg, an invalid
    metric or explicit alphas over the budget give an ``Error`` verdict whose message names it
    (the engine then aborts with it).
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
        self.lifecycle = RunLifecycle(
            store,
            provider_factory,
            clock,
            alpha=alpha,
            run_history=run_history,
            result_of=metric_result,
        )
        self._ticked: dict[RunOwner, _Ticked] = {}

    @property
    def store(self) -> AnalysisRunStore:
        return self.lifecycle.store

    @store.setter
    def store(self, store: AnalysisRunStore) -> None:
        self.lifecycle.store = store

    @property
    def clock(self) -> Callable[[], float]:
        """The analysis clock (measurement times are on it)."""
        return self.lifecycle.clock

    @property
    def run_history(self) -> int:
        return self.lifecycle.run_history

    @property
    def alpha(self) -> float:
        return self.lifecycle.alpha

    # -------------------------------------------------------------------------- the port
    def start(self, rollout: Rollout, request: StartAnalysis) -> None:
        # an unresolvable analysis is retried by the next tick and reported by observe, every
        # time, until the engine acts on it
        with contextlib.suppress(Unresolved):
            self._create(rollout, request.name, request.kind, request.step_index)

    def stop(self, rollout: Rollout, name: str) -> None:
        self.lifecycle.stop(rollout.metadata.namespace, name)

    def tick(self, rollout: Rollout) -> None:
        owner = owner_of(rollout)
        seen = _Ticked(runs={r.metadata.name: r for r in self.lifecycle.runs(owner)})
        st = rollout.status
        for rec in st.analysis_runs if st is not None else []:
            if rec.name in seen.runs or rec.phase not in ("Pending", "Running"):
                continue
            try:
                seen.runs[rec.name] = self._create(rollout, rec.name, rec.kind, rec.step_index)
            except Unresolved as e:
                seen.errors[rec.name] = str(e)
            except Exception as e:
                # the store failed (a run created without its status, say): retried next tick,
                # repaired once found; the engine's progress deadline bounds the wait
                log.warning("AnalysisRun %s/%s not created: %s", owner.namespace, rec.name, e)
        changed = st.weight_changed_at if st is not None else None
        cuts = () if changed is None else (changed.timestamp(),)
        share = canary_share(rollout)
        shares = () if share is None or changed is None else ((changed.timestamp(), share),)
        for name, run in seen.runs.items():
            try:
                seen.runs[name] = self.lifecycle.tick(run, cuts, shares)
            except Exception as e:
                # one run's trouble must not stop the Rollout's reconcile (an abort must still
                # be able to happen); observe reports the run once it is stuck (see stalled)
                seen.failed[name] = e
                log.warning("AnalysisRun %s/%s not advanced: %s", owner.namespace, name, e)
        self._ticked[owner] = seen

    def observe(self, rollout: Rollout) -> dict[str, AnalysisObservation]:
        owner = owner_of(rollout)
        seen = self._ticked.pop(owner, None)
        if seen is None:  # observed without a tick first: read, never write
            seen = _Ticked(runs={r.metadata.name: r for r in self.lifecycle.runs(owner)})
        out = {name: AnalysisObservation("Error", message) for name, message in seen.errors.items()}
        for name, run in seen.runs.items():
            status = run.status
            error = seen.failed.get(name)
            if error is not None:
                # the API server's passing trouble (an outage) gets longer than the run's own
                patience = STALL_TRANSIENT_SECONDS if transient(error) else STALL_MIN_SECONDS
                stuck = self.lifecycle.stalled(run, min_seconds=patience)
                if stuck is not None:
                    last = f"{type(error).__name__}: {error}"
                    out[name] = AnalysisObservation("Error", f"{stuck}; last: {last}")
                    continue
            if status is None or status.phase == "Stopped" or status.state.get("stopped"):
                continue
            out[name] = AnalysisObservation(status.phase, status.message, metric_summaries(run))
        return out

    # -------------------------------------------------------------------------- creating runs
    def _create(
        self, rollout: Rollout, name: str, kind: RunKind, step_index: int | None
    ) -> AnalysisRun:
        st = rollout.status or RolloutStatus()
        refs = _all_refs(rollout)
        own = _ref_for(rollout, kind, step_index)
        request = RunRequest(
            owner=owner_of(rollout),
            name=name,
            revision=st.current_revision or "unknown",
            attempt=st.attempt or 1,
            kind=kind,
            step_index=step_index,
            analysis=_analysis(own, kind == "background"),
            budget=tuple(_analysis(r, background) for r, background in refs),
            builtins=builtin_args(rollout),
            in_flight=frozenset(
                r.name for r in st.analysis_runs if r.phase in ("Pending", "Running")
            ),
            canary_pods=canary_pods(rollout, kind, step_index),
        )
        return self.lifecycle.create(request)

    def prune(self, rollout: Rollout) -> list[str]:
        """Delete the Rollout's runs beyond its history limit (see ``RunLifecycle.prune``)."""
        st = rollout.status or RolloutStatus()
        return self.lifecycle.prune(
            owner_of(rollout),
            (st.current_revision or "unknown", st.attempt or 1),
            frozenset(r.name for r in st.analysis_runs if r.phase in ("Pending", "Running")),
        )


def budget_problem(
    rollout: Rollout,
    template: Callable[[TemplateRef], AnalysisTemplate | ClusterAnalysisTemplate | None],
    alpha: float = ROLLOUT_ALPHA,
) -> str | None:
    """Why the explicit alphas of the Rollout's templates overspend its budget (naming the
    field), or None. ``template`` looks a reference up; templates it cannot find are left out,
    as the controller leaves out those that do not resolve (their own run reports them)."""
    analyses = [_analysis(r, background) for r, background in _all_refs(rollout)]
    found = [(a, [t for ref in a.templates if (t := template(ref)) is not None]) for a in analyses]
    try:
        shares(found, alpha)
    except BudgetError as e:
        return str(e)
    return None


def _analysis(ref: AnalysisRef, background: bool) -> Analysis:
    return Analysis(
        templates=tuple(TemplateRef(t.template_name, t.cluster_scope) for t in ref.templates),
        args={a.name: a.value or "" for a in ref.args or []},
        background=background,
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


def canary_share(rollout: Rollout) -> float | None:
    """The share of requests the canary is asked to take now (0-1), for the sample-ratio guard;
    None where no share is asked of it (blue-green: the preview takes no production traffic,
    and after promotion the new revision takes it all).

    With a traffic router it is the weight Sluice set. Without one, traffic follows the replica
    ratio behind the stable Service, so it is the canary slot's replicas over both slots' (the
    weight reported then is the one asked, not what the pods split: 10% of 3 replicas is one
    pod of three)."""
    st = rollout.status
    c = rollout.canary
    if st is None or c is None or st.current_revision == st.stable_revision:
        return None
    if c.traffic_routing is not None:
        return st.weights.canary / 100
    by_role = {s.role: s.replicas for s in st.slots}
    canary, stable = by_role.get("canary", 0), by_role.get("stable", 0)
    if canary + stable <= 0:
        return None
    return canary / (canary + stable)


def canary_pods(rollout: Rollout, kind: RunKind, step_index: int | None) -> int | None:
    """The canary's pod count a run judges with: the smallest over the steps its evidence comes
    from (pods as the sampling unit: fewer pods, a wider spread of their mean, so the smallest
    keeps the widening valid for every step). None when the Rollout does not say.

    Canary: step runs chain their e-processes, so each takes every step with analysis (one
    count for the whole chain); a background run every step from ``startingStep`` on (and the last
    weight, held until promotion). A step's pods are those of the weight the steps before it
    reached, or its own setWeight (what Sluice deploys, ``percent_of``); steps at weight 0
    (no traffic, no data) are left out, and one pod is assumed when every step is.
    Blue-green: the preview's replicas before promotion, all replicas after it (pre- and
    post-promotion runs chain)."""
    n = rollout.spec.replicas
    if rollout.blue_green is not None:
        bg = rollout.blue_green
        preview = n if bg.preview_replica_count is None else bg.preview_replica_count
        counts = [preview, n] if bg.pre_promotion_analysis is not None else [n]
        positive = [k for k in counts if k > 0]
        return min(positive) if positive else None
    c = rollout.canary
    if c is None:
        return None
    judged: list[int]
    if kind == "background" and c.analysis is not None:
        judged = list(range(min(c.analysis.starting_step, len(c.steps)), len(c.steps) + 1))
    else:
        judged = [i for i, step in enumerate(c.steps) if step.analysis is not None]
        judged = judged or [step_index or 0]
    pods = [k for i in judged if (k := percent_of(n, _weight_during(c, i))) > 0]
    return (min(pods) if pods else 1) if n > 0 else None


def _weight_during(c: CanaryStrategy, i: int) -> int:
    """The canary weight while step ``i`` is worked on, once its own setWeight (if any) holds:
    a weight step's analysis data flows at the new weight, never at the old one."""
    if i < len(c.steps) and c.steps[i].set_weight is not None:
        return c.steps[i].set_weight or 0
    return reached_weight(c, i)


def _all_refs(rollout: Rollout) -> list[tuple[AnalysisRef, bool]]:
    """Every analysis ref of the Rollout, and whether it is a background one."""
    refs: list[tuple[AnalysisRef, bool]] = []
    if rollout.canary is not None:
        refs += [(s.analysis, False) for s in rollout.canary.steps if s.analysis is not None]
        if rollout.canary.analysis is not None:
            refs.append((rollout.canary.analysis, True))
    if rollout.blue_green is not None:
        bg = rollout.blue_green
        refs += [(r, False) for r in (bg.pre_promotion_analysis, bg.post_promotion_analysis) if r]
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
        raise Unresolved(
            f"the Rollout has no {kind} analysis"
            + (f" at step {step_index + 1}" if step_index is not None else "")
        )
    return ref
