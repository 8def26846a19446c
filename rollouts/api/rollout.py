"""The Rollout contract: what users write (spec) and what Sluice reports (status).

These models are the single source of truth: the CRD schema, ``sluice lint``, the controller's
validation and the docs reference are all generated from them, so the four can never disagree.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, Field, model_validator

from rollouts.api.base import (
    ApiModel,
    Duration,
    NonNegativeInt,
    Percent,
    StatusModel,
    differ_rule,
    exactly_one,
    one_of_rule,
    services_differ,
)

API_GROUP = "sluice.dev"
API_VERSION = "v1alpha1"
KIND = "Rollout"


# ---------------------------------------------------------------------------------------------
# spec
# ---------------------------------------------------------------------------------------------


class LabelSelectorRequirement(ApiModel):
    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] | None = None


class LabelSelector(ApiModel):
    """Selects the pods of this Rollout, as a Deployment's selector does."""

    match_labels: dict[str, str] | None = None
    match_expressions: list[LabelSelectorRequirement] | None = None


class PauseStep(ApiModel):
    """Pause for ``duration``, or until a person promotes when no duration is given."""

    duration: Duration | None = None


class TemplateRef(ApiModel):
    template_name: str = Field(min_length=1)
    cluster_scope: bool = False


class AnalysisArg(ApiModel):
    """An argument passed to the analysis templates; values are escaped before use in a query."""

    name: str = Field(min_length=1)
    value: str | None = None


class AnalysisRef(ApiModel):
    templates: list[TemplateRef] = Field(min_length=1, max_length=20)
    """AnalysisTemplates (or ClusterAnalysisTemplates) whose metrics judge this analysis."""
    args: list[AnalysisArg] | None = Field(default=None, max_length=50)
    """Values for the templates' arguments."""


class BackgroundAnalysis(AnalysisRef):
    """Analysis that runs alongside the steps from ``startingStep`` until promotion."""

    starting_step: NonNegativeInt = 0


class CanaryStep(ApiModel):
    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [one_of_rule("setWeight", "pause", "analysis")]
        }
    }

    set_weight: Percent | None = None
    pause: PauseStep | None = None
    analysis: AnalysisRef | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> CanaryStep:
        exactly_one(setWeight=self.set_weight, pause=self.pause, analysis=self.analysis)
        return self

    @property
    def kind(self) -> Literal["setWeight", "pause", "analysis"]:
        if self.set_weight is not None:
            return "setWeight"
        if self.pause is not None:
            return "pause"
        return "analysis"

    def describe(self) -> str:
        """One short phrase for progress lines, events and the CLI."""
        if self.set_weight is not None:
            return f"setWeight {self.set_weight}%"
        if self.pause is not None:
            return f"pause {self.pause.duration}" if self.pause.duration is not None else "pause"
        assert self.analysis is not None
        return "analysis " + ",".join(t.template_name for t in self.analysis.templates)


class IstioVirtualService(ApiModel):
    name: str = Field(min_length=1)
    routes: list[str] | None = None


class IstioRouting(ApiModel):
    virtual_service: IstioVirtualService


class HTTPRouteRef(ApiModel):
    name: str = Field(min_length=1)


class GatewayAPIRouting(ApiModel):
    http_route: HTTPRouteRef


class SMIRouting(ApiModel):
    traffic_split_name: str = Field(min_length=1)


class NginxRouting(ApiModel):
    stable_ingress: str = Field(min_length=1)


class TrafficRouting(ApiModel):
    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [one_of_rule("istio", "gatewayAPI", "smi", "nginx")]
        }
    }

    istio: IstioRouting | None = None
    gateway_api: GatewayAPIRouting | None = Field(default=None, alias="gatewayAPI")
    smi: SMIRouting | None = None
    nginx: NginxRouting | None = None

    @model_validator(mode="after")
    def _one_router(self) -> TrafficRouting:
        exactly_one(istio=self.istio, gatewayAPI=self.gateway_api, smi=self.smi, nginx=self.nginx)
        return self

    @property
    def router(self) -> Literal["istio", "gatewayAPI", "smi", "nginx"]:
        if self.istio is not None:
            return "istio"
        if self.gateway_api is not None:
            return "gatewayAPI"
        if self.smi is not None:
            return "smi"
        return "nginx"


class CanaryStrategy(ApiModel):
    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [differ_rule("stableService", "canaryService")]
        }
    }

    stable_service: str = Field(min_length=1)
    """Service whose selector Sluice points at the stable slot."""
    canary_service: str = Field(min_length=1)
    """Service whose selector Sluice points at the canary slot."""
    traffic_routing: TrafficRouting | None = None
    """Mesh or ingress that splits traffic; without it, traffic follows the replica ratio."""
    steps: list[CanaryStep] = Field(default_factory=list, max_length=100)
    """Steps run in order; after the last one the canary is promoted."""
    analysis: BackgroundAnalysis | None = None
    """Background analysis from startingStep until promotion; a failure aborts at once."""
    scale_down_delay_seconds: NonNegativeInt = 30
    """How long the old stable pods stay up after promotion."""
    abort_scale_down_delay_seconds: NonNegativeInt = 30
    """How long the canary pods stay up after an abort, so in-flight requests drain."""
    max_surge: int | str = Field(
        default="25%", json_schema_extra={"x-kubernetes-int-or-string": True}
    )
    """Accepted for Argo Rollouts compatibility; not yet used: Sluice adds canary pods before it
    removes stable ones, so the surge is the canary's pod count."""

    @model_validator(mode="after")
    def _services_differ(self) -> CanaryStrategy:
        services_differ(stableService=self.stable_service, canaryService=self.canary_service)
        return self


class BlueGreenStrategy(ApiModel):
    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [differ_rule("activeService", "previewService")]
        }
    }

    active_service: str = Field(min_length=1)
    """Service that serves production; switched to the new slot on promotion."""
    preview_service: str = Field(min_length=1)
    """Service that reaches the new revision before promotion."""
    preview_replica_count: NonNegativeInt | None = None
    """Pods in the preview before promotion (default: all replicas)."""
    auto_promotion_enabled: bool = True
    """Promote without a person once the preview is ready and pre-promotion analysis passed."""
    auto_promotion_seconds: NonNegativeInt | None = None
    """Wait this long after the preview is ready before auto-promotion."""
    pre_promotion_analysis: AnalysisRef | None = None
    """Analysis of the preview; a failure aborts before any production traffic moves."""
    post_promotion_analysis: AnalysisRef | None = None
    """Analysis after the switch; a failure switches back to the old pods, kept until it passes."""
    scale_down_delay_seconds: NonNegativeInt = 30
    """How long the old pods stay up after promotion (after post-promotion analysis passes)."""

    @model_validator(mode="after")
    def _services_differ(self) -> BlueGreenStrategy:
        services_differ(activeService=self.active_service, previewService=self.preview_service)
        return self


class Strategy(ApiModel):
    model_config = ApiModel.model_config | {
        "json_schema_extra": {"x-kubernetes-validations": [one_of_rule("canary", "blueGreen")]}
    }

    canary: CanaryStrategy | None = None
    blue_green: BlueGreenStrategy | None = None

    @model_validator(mode="after")
    def _one_strategy(self) -> Strategy:
        exactly_one(canary=self.canary, blueGreen=self.blue_green)
        return self


class RolloutSpec(ApiModel):
    replicas: NonNegativeInt = 1
    """Pods of the stable revision."""
    selector: LabelSelector
    """Must match the template's labels; Sluice adds its slot labels on top."""
    template: dict[str, Any] = Field(
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}
    )
    """Pod template, as in a Deployment; a change to it is a new revision."""
    revision_history_limit: NonNegativeInt = 10
    """How many past rollouts (Promoted, Aborted, Superseded) status.history keeps."""
    progress_deadline_seconds: NonNegativeInt = 600
    """Abort when pods make no progress for this long (pauses and analysis do not count)."""
    strategy: Strategy
    """Exactly one of canary or blueGreen."""

    @model_validator(mode="after")
    def _selector_matches_template(self) -> RolloutSpec:
        """A selector that does not match the template's labels would orphan every pod."""
        wanted = self.selector.match_labels or {}
        labels = (self.template.get("metadata") or {}).get("labels") or {}
        missing = {k: v for k, v in wanted.items() if labels.get(k) != v}
        if missing:
            raise ValueError(
                "selector.matchLabels must match template.metadata.labels "
                f"(not matched: {', '.join(f'{k}={v}' for k, v in missing.items())})"
            )
        return self


# ---------------------------------------------------------------------------------------------
# status (written only by Sluice)
# ---------------------------------------------------------------------------------------------


Phase = Literal["Healthy", "Progressing", "Paused", "Degraded"]
SlotName = Literal["a", "b"]
Role = Literal["stable", "canary", "active", "preview"]


class Condition(StatusModel):
    """A Kubernetes ``metav1.Condition``, so kstatus (Flux) and Argo CD read health unaided."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    last_transition_time: AwareDatetime
    observed_generation: int | None = None


class SlotStatus(StatusModel):
    name: SlotName
    role: Role | None = None
    revision: str | None = None
    replicas: int = 0
    ready_replicas: int = 0


class Weights(StatusModel):
    canary: int = 0
    stable: int = 100
    verified: bool | None = None


class PauseCondition(StatusModel):
    reason: Literal["CanaryPauseStep", "BlueGreenPause", "PausedByUser", "InconclusiveAnalysis"]
    start_time: AwareDatetime


class AbortInfo(StatusModel):
    reason: str
    message: str
    time: AwareDatetime
    revision: str


class HistoryEntry(StatusModel):
    revision: str
    outcome: Literal["Promoted", "Aborted", "Superseded"]
    time: AwareDatetime
    message: str = ""


class AnalysisMetricStatus(StatusModel):
    """One metric's current evidence, compact enough for ``kubectl get -o yaml`` and the CLI.

    The AnalysisRun of the same name holds the full record (measurements, e-process state)."""

    name: str
    phase: str = "Pending"
    """The metric's own phase: Running, Successful, Failed, Inconclusive or Error."""
    method: str | None = None
    """sequential-rate-ratio, sequential-histogram-exceedance, mann-whitney, argo-threshold..."""
    outcome: str | None = None
    """reject, accept, continue or insufficient (not enough valid data to judge)."""
    estimate: float | None = None
    """Canary/baseline ratio (compare) or the last value (threshold)."""
    interval: list[float | None] | None = None
    """Confidence interval (sequence) on the estimate."""
    e_value: float | None = None
    """Sequential tests: evidence against "within tolerance"; the metric fails at 1/alpha."""
    statistic: float | None = None
    """Other methods' statistic (Mann-Whitney U, the measured value)."""
    threshold: float | None = None
    """What the e-value or statistic is compared with."""
    events: int = 0
    """Events (errors, requests, observations) behind the evidence."""
    measurements: int = 0
    """Measurements taken so far (all phases)."""
    dry_run: bool = False
    message: str = ""


class AnalysisRunRecord(StatusModel):
    """A started analysis and its last verdict: how the engine remembers what it already asked for."""

    name: str
    kind: Literal["step", "background", "prePromotion", "postPromotion"]
    step_index: int | None = None
    phase: Literal[
        "Pending", "Running", "Successful", "Failed", "Inconclusive", "Error", "Stopped"
    ] = "Pending"
    message: str = ""
    metrics: list[AnalysisMetricStatus] = Field(default_factory=list)
    """Each metric's latest evidence (the AnalysisRun of this name has the full record)."""


class ScaleDown(StatusModel):
    """A slot waiting out its scale-down delay (kept in status so a restart does not lose it)."""

    slot: SlotName
    at: AwareDatetime


class RolloutStatus(StatusModel):
    observed_generation: int | None = None
    phase: Phase | None = None
    message: str = ""
    current_revision: str | None = None
    stable_revision: str | None = None
    stable_slot: SlotName | None = None
    slots: list[SlotStatus] = Field(default_factory=list)
    attempt: int | None = None  # 1 for a revision's first rollout, +1 for each retry
    current_step_index: int | None = None
    step_count: int | None = None
    step_started_at: AwareDatetime | None = None
    rollout_started_at: AwareDatetime | None = None
    last_progress_at: AwareDatetime | None = None
    weights: Weights = Field(default_factory=Weights)
    pause_conditions: list[PauseCondition] = Field(default_factory=list)
    abort: AbortInfo | None = None
    promoted_at: AwareDatetime | None = None
    analysis_runs: list[AnalysisRunRecord] = Field(default_factory=list)
    scale_downs: list[ScaleDown] = Field(default_factory=list)
    last_request: str | None = None
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    history: list[HistoryEntry] = Field(default_factory=list)
    # Printer-column helpers: CRD additionalPrinterColumns take JSONPaths only, no expressions.
    step: str | None = None
    """Canary: the step being worked on, numbered from 1 (``2/4``: the second of four steps),
    ``-`` when no revision is rolling out; blue-green: ``preview`` or ``active``."""
    replicas: int | None = None
    label_selector: str | None = None


class ObjectMeta(ApiModel):
    """The metadata Sluice reads; everything else the API server sends is kept but ignored."""

    model_config = ApiModel.model_config | {"extra": "allow"}

    name: str = Field(min_length=1)
    namespace: str = "default"
    generation: int | None = None
    uid: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class Rollout(ApiModel):
    api_version: Literal["sluice.dev/v1alpha1"] = "sluice.dev/v1alpha1"
    kind: Literal["Rollout"] = "Rollout"
    metadata: ObjectMeta
    spec: RolloutSpec
    status: RolloutStatus | None = None

    @property
    def canary(self) -> CanaryStrategy | None:
        return self.spec.strategy.canary

    @property
    def blue_green(self) -> BlueGreenStrategy | None:
        return self.spec.strategy.blue_green
