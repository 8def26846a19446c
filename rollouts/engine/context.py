"""The working state of one ``decide`` call and the converge helpers both strategies share.

Helpers compare the desired state with what was observed and emit an action only on a difference:
reconciling twice does nothing twice, and a person's hand edit of a selector or weight is undone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from rollouts.api.rollout import (
    AbortInfo,
    AnalysisRunRecord,
    HistoryEntry,
    PauseCondition,
    Rollout,
    RolloutStatus,
    ScaleDown,
    SlotName,
)
from rollouts.engine.plan import (
    Action,
    AnalysisKind,
    DeploySlot,
    EmitEvent,
    Observed,
    ScaleSlot,
    SetServiceSelector,
    SetWeight,
    StartAnalysis,
    StopAnalysis,
)
from rollouts.engine.revision import template_hash


def services_of(rollout: Rollout) -> list[str]:
    """The Rollout's two Services, stable (or active) first: both strategies name two."""
    if rollout.canary is not None:
        return [rollout.canary.stable_service, rollout.canary.canary_service]
    assert rollout.blue_green is not None
    return [rollout.blue_green.active_service, rollout.blue_green.preview_service]


def other(slot: SlotName) -> SlotName:
    return "b" if slot == "a" else "a"


def percent_of(replicas: int, weight: int) -> int:
    """Pods needed to carry ``weight`` percent: at least one for any nonzero weight."""
    if weight <= 0:
        return 0
    return max(1, math.ceil(replicas * weight / 100))


@dataclass
class Ctx:
    rollout: Rollout
    observed: Observed
    now: datetime
    status: RolloutStatus
    actions: list[Action] = field(default_factory=list)
    wakeups: list[datetime] = field(default_factory=list)

    # -------------------------------------------------------------------------- identities
    @property
    def name(self) -> str:
        return self.rollout.metadata.name

    @property
    def replicas(self) -> int:
        return self.rollout.spec.replicas

    @property
    def desired(self) -> str:
        return template_hash(self.rollout.spec.template)

    @property
    def stable_slot(self) -> SlotName:
        assert self.status.stable_slot is not None
        return self.status.stable_slot

    @property
    def new_slot(self) -> SlotName:
        return other(self.stable_slot)

    def aborted(self) -> bool:
        a = self.status.abort
        return a is not None and a.revision == self.status.current_revision

    def paused_by_user(self) -> bool:
        return any(p.reason == "PausedByUser" for p in self.status.pause_conditions)

    # -------------------------------------------------------------------------- converge
    def slot_now(self, slot: SlotName) -> tuple[str | None, int] | None:
        """(revision, replicas) of a slot as this plan leaves it so far: later actions win."""
        obs = self.observed.slots.get(slot)
        state = (obs.revision, obs.replicas) if obs is not None else None
        for a in self.actions:
            if isinstance(a, DeploySlot) and a.slot == slot:
                state = (a.revision, a.replicas)
            elif isinstance(a, ScaleSlot) and a.slot == slot and state is not None:
                state = (state[0], a.replicas)
        return state

    def deploy(self, slot: SlotName, replicas: int) -> None:
        """Run the desired revision in ``slot`` with ``replicas`` pods."""
        now = self.slot_now(slot)
        if now is None or now[0] != self.desired:
            self.actions.append(
                DeploySlot(slot, self.desired, self.rollout.spec.template, replicas)
            )
        elif now[1] != replicas:
            self.actions.append(ScaleSlot(slot, replicas))

    def scale(self, slot: SlotName, replicas: int) -> None:
        now = self.slot_now(slot)
        if now is not None and now[1] != replicas:
            self.actions.append(ScaleSlot(slot, replicas))

    def ready(self, slot: SlotName, replicas: int, revision: str | None = None) -> bool:
        obs = self.observed.slots.get(slot)
        rev = revision or self.desired
        return obs is not None and obs.revision == rev and obs.ready_replicas >= replicas

    def select(self, service: str, slot: SlotName | None) -> None:
        current: SlotName | str | None = self.observed.services.get(service, "unobserved")
        for a in self.actions:
            if isinstance(a, SetServiceSelector) and a.service == service:
                current = a.slot
        if current != slot:
            self.actions.append(SetServiceSelector(service, slot))

    def weight(self, canary: int, routed: bool) -> None:
        """Set the canary weight; with no router the weight is the replica ratio and only reported."""
        if routed:
            current = self.observed.weight
            verified = self.observed.weight_verified
            for a in self.actions:
                if isinstance(a, SetWeight):
                    current, verified = a.canary, None
            if current != canary or verified is False:
                self.actions.append(SetWeight(canary))
        if self.status.weights.canary != canary:
            self.status.weight_changed_at = self.now
        self.status.weights.canary = canary
        self.status.weights.stable = 100 - canary
        self.status.weights.verified = self.observed.weight_verified if routed else None

    def event(self, reason: str, message: str, warning: bool = False) -> None:
        self.actions.append(EmitEvent("Warning" if warning else "Normal", reason, message))

    def wake_at(self, when: datetime) -> None:
        self.wakeups.append(when)

    # -------------------------------------------------------------------------- pauses
    def pause(self, reason: str) -> None:
        if not any(p.reason == reason for p in self.status.pause_conditions):
            self.status.pause_conditions.append(
                PauseCondition.model_validate({"reason": reason, "startTime": self.now})
            )

    def unpause(self, reason: str) -> None:
        self.status.pause_conditions = [
            p for p in self.status.pause_conditions if p.reason != reason
        ]

    def paused_since(self, reason: str) -> datetime | None:
        for p in self.status.pause_conditions:
            if p.reason == reason:
                return p.start_time
        return None

    # -------------------------------------------------------------------------- analysis
    def analysis(
        self,
        kind: AnalysisKind,
        templates: tuple[str, ...],
        args: tuple[tuple[str, str], ...],
        step_index: int | None = None,
    ) -> AnalysisRunRecord:
        """Start (once) the analysis of this kind for the current revision and return its record."""
        # steps are numbered from 1 everywhere people read them: the run of step 2 is -step2
        suffix = {
            "step": f"step{(step_index or 0) + 1}",
            "background": "bg",
            "prePromotion": "pre",
            "postPromotion": "post",
        }[kind]
        attempt = self.status.attempt or 1
        retry = f"-r{attempt}" if attempt > 1 else ""  # a retry must not see the old verdicts
        name = f"{self.name}-{self.status.current_revision}{retry}-{suffix}"
        earlier = False  # started by an earlier reconcile
        for run in self.status.analysis_runs:
            # by kind and step, not name: a run started before step runs were numbered from 1
            # (``-step1`` for step 2) is still this step's run after an upgrade
            if run.name == name or (run.kind == kind and run.step_index == step_index):
                name = run.name
                earlier = True
                break
        else:
            run = AnalysisRunRecord(name=name, kind=kind, step_index=step_index, phase="Pending")
            self.status.analysis_runs.append(run)
            self.actions.append(StartAnalysis(name, kind, templates, args, step_index))
            self.event("AnalysisStarted", f"started {kind} analysis {name}")
        seen = self.observed.analysis.get(name)
        # a verdict, a person's waiver or a stop stands; late observations do not rewrite it
        final = run.phase in ("Successful", "Failed", "Error", "Stopped")
        if seen is None and earlier and not final and self._unreported_deadline_passed():
            # a run that never reports (its status never written, or unreadable) must not hold
            # the canary's traffic forever: after progressDeadlineSeconds it is an Error verdict
            run.phase = "Error"
            run.message = (
                f"AnalysisRun {name} reported no verdict within progressDeadlineSeconds "
                f"({self.rollout.spec.progress_deadline_seconds}s)"
            )
        if seen is not None and not final:
            if run.phase != seen.phase:
                run.phase = seen.phase
                run.message = seen.message
            if seen.metrics:
                run.metrics = [m.model_copy() for m in seen.metrics]
        return run

    def stop_analyses(self, why: str) -> None:
        """Stop every unfinished analysis; ``Stopped`` says no verdict was reached, and why."""
        for run in self.status.analysis_runs:
            if run.phase in ("Pending", "Running"):
                self.actions.append(StopAnalysis(run.name))
                run.phase = "Stopped"
                run.message = why

    # -------------------------------------------------------------------------- transitions
    def record(self, revision: str, outcome: str, message: str) -> None:
        entry = HistoryEntry.model_validate(
            {"revision": revision, "outcome": outcome, "time": self.now, "message": message}
        )
        limit = self.rollout.spec.revision_history_limit
        self.status.history = [*self.status.history, entry][-limit:] if limit else []

    def schedule_scale_down(self, slot: SlotName, delay_seconds: int) -> None:
        self.cancel_scale_down(slot)
        at = self.now + timedelta(seconds=delay_seconds)
        self.status.scale_downs.append(ScaleDown(slot=slot, at=at))

    def cancel_scale_down(self, slot: SlotName) -> None:
        self.status.scale_downs = [s for s in self.status.scale_downs if s.slot != slot]

    def apply_due_scale_downs(self) -> None:
        keep = []
        for sd in self.status.scale_downs:
            if sd.at <= self.now:
                self.scale(sd.slot, 0)
            else:
                keep.append(sd)
                self.wake_at(sd.at)
        self.status.scale_downs = keep

    def start_revision(self, retry: bool = False) -> None:
        """Begin rolling out the desired revision from the first step."""
        st = self.status
        st.attempt = (st.attempt or 1) + 1 if retry else 1
        st.current_revision = self.desired
        st.current_step_index = 0
        st.step_started_at = self.now
        st.rollout_started_at = self.now
        st.last_progress_at = self.now
        st.abort = None
        st.promoted_at = None
        st.analysis_runs = []
        st.pause_conditions = [p for p in st.pause_conditions if p.reason == "PausedByUser"]
        st.gate = None
        self.cancel_scale_down(self.new_slot)
        self.event(
            "RolloutStarted", f"rolling out revision {self.desired} (stable {st.stable_revision})"
        )

    def abort(self, reason: str, message: str, metric: str | None = None) -> None:
        st = self.status
        assert st.current_revision is not None
        self.stop_analyses(f"rollout aborted: {reason}")
        st.abort = AbortInfo.model_validate(
            {
                "reason": reason,
                "message": message,
                "time": self.now,
                "revision": st.current_revision,
                "metric": metric,
            }
        )
        st.pause_conditions = []
        self.record(st.current_revision, "Aborted", f"{reason}: {message}")
        self.event("RolloutAborted", f"{reason}: {message}", warning=True)

    def abort_for_analysis(self, what: str, run: AnalysisRunRecord) -> None:
        """Abort because ``run`` (``what``: "step 2 analysis", ...) failed, naming in status the
        metric that decided it, so readers need not dig it out of the message."""
        self.abort(
            "AnalysisFailed",
            f"{what} {run.name}: {run.message or run.phase}",
            metric=deciding_metric(run),
        )

    def abandon(self, why: str) -> None:
        """Drop the in-flight revision (superseded or reverted): stop its analyses, note why."""
        st = self.status
        assert st.current_revision is not None
        self.stop_analyses(f"revision abandoned: {why}")
        if not self.aborted():  # an aborted revision already has its history entry
            self.record(st.current_revision, "Superseded", why)
            self.event("RolloutSuperseded", f"revision {st.current_revision} abandoned: {why}")
        st.pause_conditions = [p for p in st.pause_conditions if p.reason == "PausedByUser"]
        st.abort = None

    def progress_deadline_passed(self) -> bool:
        """True when waiting for pods has outlasted progressDeadlineSeconds (pauses don't count)."""
        last = self.status.last_progress_at or self.now
        deadline = last + timedelta(seconds=self.rollout.spec.progress_deadline_seconds)
        if self.now >= deadline:
            return True
        self.wake_at(deadline)
        return False

    def _unreported_deadline_passed(self) -> bool:
        """progressDeadlineSeconds since the rollout last moved (pods, a step, a promotion): how
        long a started analysis may go without reporting anything at all."""
        st = self.status
        moved = [t for t in (st.last_progress_at, st.step_started_at, st.promoted_at) if t]
        deadline = max(moved, default=self.now) + timedelta(
            seconds=self.rollout.spec.progress_deadline_seconds
        )
        if self.now >= deadline:
            return True
        self.wake_at(deadline)
        return False

    def note_progress(self, slot: SlotName) -> None:
        """Count new ready pods as progress, so a slow but moving rollout is not aborted."""
        obs = self.observed.slots.get(slot)
        before = next((s.ready_replicas for s in self.status.slots if s.name == slot), 0)
        if obs is not None and obs.revision == self.desired and obs.ready_replicas > before:
            self.status.last_progress_at = self.now


def deciding_metric(run: AnalysisRunRecord) -> str | None:
    """The gating metric a failed run's verdict rests on: the first in the worst phase, as the
    run's phase is combined from its metrics' (Failed, then Error, then Inconclusive)."""
    for phase in ("Failed", "Error", "Inconclusive"):
        for m in run.metrics:
            if m.phase == phase and not m.dry_run:
                return m.name
    return None
