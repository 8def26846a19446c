"""The Rollout contract: what users write (spec) and what Sluice reports (status).

These models are the single source of truth: the CRD schema, ``sluice lint``, the controller's
validation and the docs reference are all generated from them, so the four can never disagree.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import AwareDatetime, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails

from analysis.api_conventions import FieldProblem
from analysis.stats.evidence import Evidence
from rollouts.api.base import (
    ApiModel,
    Duration,
    NonNegativeInt,
    Percent,
    StatusModel,
    differ_rule,
    exactly_one,
    one_of_rule,
    parse_duration,
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


class StringMatch(ApiModel):
    """How a header value matches: exactly one of exact, prefix or regex."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": {"x-kubernetes-validations": [one_of_rule("exact", "prefix", "regex")]}
    }

    exact: str | None = None
    prefix: str | None = None
    regex: str | None = Field(default=None, min_length=1)
    """RE2 syntax (Istio, Envoy; Gateway API implementations that support RegularExpression)."""

    @model_validator(mode="after")
    def _one_kind(self) -> StringMatch:
        exactly_one(exact=self.exact, prefix=self.prefix, regex=self.regex)
        return self


class HeaderRouteMatch(ApiModel):
    header_name: str = Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
    """The request header, for example x-canary (case-insensitive on the wire)."""
    header_value: StringMatch


class CookieMatch(ApiModel):
    name: str = Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
    """The cookie's name."""
    value: str = Field(min_length=1, pattern=r"^[A-Za-z0-9!#$%&'()*+./:<=>?@\[\]^_`{|}~-]+$")
    """The value that routes to the canary (NGINX: must be always)."""


class SetHeaderRoute(ApiModel):
    """Send requests that carry all these headers (and the cookie) to the canary, whatever the
    weight: A/B testing, or a session pinned to the canary. Empty removes the route."""

    match: list[HeaderRouteMatch] = Field(default_factory=list, max_length=8)
    """Headers a request must carry, all of them."""
    cookie: CookieMatch | None = None
    """A cookie the request must carry, with this value."""


class SetMirrorRoute(ApiModel):
    """Copy ``percentage`` of the traffic to the canary; responses still come from the weighted
    route, so users never see the canary's. 0 removes the mirror."""

    percentage: Percent = 100


GATE_MAX_TIMEOUT = 10
"""Seconds a gate's request may take at most: the probe runs in the reconcile, which must not
wait long on one Rollout's gate."""


class GateHeader(ApiModel):
    name: str = Field(pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", max_length=256)
    """The header's name."""
    value: str = Field(pattern=r"^[^\r\n]*$", max_length=4096)
    """Its value (no CR or LF)."""


class Gate(ApiModel):
    """Wait until a URL says "open", as Flagger's confirm-promotion webhook: HTTP 200 is open,
    any other answer (another status, a timeout, a refused connection) is closed. Polled with
    backoff from `interval` up to 4 x `interval` (at most 5 minutes) while closed; `sluice
    promote` passes a closed gate."""

    url: str = Field(pattern=r"^https?://\S+$", max_length=2048)
    """Asked with GET; no arguments are filled in (the URL is used as written)."""
    headers: list[GateHeader] = Field(default_factory=list, max_length=20)
    """Request headers."""
    interval: Duration = "10s"
    """How often a closed gate is asked again at first; doubles while it stays closed."""
    timeout: Duration = "2s"
    """How long one request may take (at most 10s): a slow gate answers "closed"."""

    @model_validator(mode="after")
    def _bounds(self) -> Gate:
        if parse_duration(self.interval) <= 0:
            raise FieldProblem("interval", "must be longer than 0s")
        t = parse_duration(self.timeout)
        if not 0 < t <= GATE_MAX_TIMEOUT:
            raise FieldProblem("timeout", f"must be between 1s and {GATE_MAX_TIMEOUT}s (got {t}s)")
        return self


class CanaryStep(ApiModel):
    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                one_of_rule(
                    "setWeight", "pause", "analysis", "setHeaderRoute", "setMirrorRoute", "gate"
                )
            ]
        }
    }

    set_weight: Percent | None = None
    pause: PauseStep | None = None
    analysis: AnalysisRef | None = None
    set_header_route: SetHeaderRoute | None = None
    """Route requests matching headers or a cookie to the canary (Istio, Gateway API, NGINX)."""
    set_mirror_route: SetMirrorRoute | None = None
    """Mirror a percentage of traffic to the canary (Istio, Gateway API)."""
    gate: Gate | None = None
    """Wait until a URL answers HTTP 200 (open); see docs/checks.md."""

    @model_validator(mode="after")
    def _one_kind(self) -> CanaryStep:
        exactly_one(
            setWeight=self.set_weight,
            pause=self.pause,
            analysis=self.analysis,
            setHeaderRoute=self.set_header_route,
            setMirrorRoute=self.set_mirror_route,
            gate=self.gate,
        )
        return self

    @property
    def kind(
        self,
    ) -> Literal["setWeight", "pause", "analysis", "setHeaderRoute", "setMirrorRoute", "gate"]:
        if self.gate is not None:
            return "gate"
        if self.set_weight is not None:
            return "setWeight"
        if self.pause is not None:
            return "pause"
        if self.set_header_route is not None:
            return "setHeaderRoute"
        if self.set_mirror_route is not None:
            return "setMirrorRoute"
        return "analysis"

    def describe(self) -> str:
        """One short phrase for progress lines, events and the CLI."""
        if self.set_weight is not None:
            return f"setWeight {self.set_weight}%"
        if self.pause is not None:
            return f"pause {self.pause.duration}" if self.pause.duration is not None else "pause"
        if self.set_header_route is not None:
            r = self.set_header_route
            parts = [m.header_name for m in r.match] + (
                [f"cookie {r.cookie.name}"] if r.cookie else []
            )
            return "setHeaderRoute " + (",".join(parts) if parts else "(remove)")
        if self.set_mirror_route is not None:
            return f"setMirrorRoute {self.set_mirror_route.percentage}%"
        if self.gate is not None:
            return f"gate {self.gate.url}"
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


_HEADER_ROUTERS = ("istio", "gatewayAPI", "nginx")
_MIRROR_ROUTERS = ("istio", "gatewayAPI")


def _routes_rule(step: str, routers: tuple[str, ...]) -> dict[str, Any]:
    has = " || ".join(f"has(self.trafficRouting.{r})" for r in routers)
    return {
        "rule": f"!self.steps.exists(s, has(s.{step})) || (has(self.trafficRouting) && ({has}))",
        "message": f"{step} steps need trafficRouting {', '.join(routers)}",
    }


class CanaryStrategy(ApiModel):
    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                differ_rule("stableService", "canaryService"),
                _routes_rule("setHeaderRoute", _HEADER_ROUTERS),
                _routes_rule("setMirrorRoute", _MIRROR_ROUTERS),
            ]
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

    @model_validator(mode="after")
    def _routes_need_a_router(self) -> CanaryStrategy:
        """Header and mirror routes live in the routing object: without one that carries them the
        step could never take effect."""
        router = self.traffic_routing.router if self.traffic_routing is not None else None
        for i, step in enumerate(self.steps):
            for field, routers, value in (
                ("setHeaderRoute", _HEADER_ROUTERS, step.set_header_route),
                ("setMirrorRoute", _MIRROR_ROUTERS, step.set_mirror_route),
            ):
                if value is not None and router not in routers:
                    got = f"trafficRouting {router}" if router else "no trafficRouting"
                    raise FieldProblem(
                        f"steps.{i}.{field}",
                        f"needs trafficRouting {', '.join(routers)} (got {got})",
                    )
            r = step.set_header_route
            if r is not None and router == "nginx":
                self._nginx_header(i, r)
        return self

    @staticmethod
    def _nginx_header(i: int, r: SetHeaderRoute) -> None:
        """NGINX's canary Ingress matches one header (exact or regex) or one cookie."""
        where = f"steps.{i}.setHeaderRoute"
        if len(r.match) + (r.cookie is not None) > 1:
            raise FieldProblem(where, "NGINX routes by one header or one cookie, not several")
        if r.match and r.match[0].header_value.prefix is not None:
            raise FieldProblem(
                f"{where}.match.0.headerValue.prefix", "NGINX matches a header exactly or by regex"
            )
        if r.cookie is not None and r.cookie.value != "always":
            raise FieldProblem(
                f"{where}.cookie.value", "NGINX sends a cookie to the canary only when it is always"
            )


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
    pre_promotion_gate: Gate | None = None
    """Before the switch (after pre-promotion analysis passed), wait until this URL answers
    HTTP 200 (open), as Flagger's confirm-promotion; `sluice promote` passes it."""
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


class WorkloadRef(ApiModel):
    """An existing Deployment whose pod template the Rollout runs (adoption): the Deployment stays
    in Git, a change to its template is a new revision, and Sluice scales it down as told."""

    api_version: Literal["apps/v1"] = "apps/v1"
    kind: Literal["Deployment"] = "Deployment"
    name: str = Field(min_length=1)
    """The Deployment, in the Rollout's namespace."""
    scale_down: Literal["never", "onSuccess", "progressively"] = "never"
    """When to scale the Deployment to 0: never (you do), onSuccess (once the Rollout's stable
    pods are all ready and serve), or progressively (as they become ready)."""


NotificationEvent = Literal[
    "Progressing", "StepCompleted", "Paused", "WaitingForGate", "Aborted", "Promoted", "Healthy"
]
NOTIFICATION_EVENTS: tuple[NotificationEvent, ...] = (
    "Progressing",
    "StepCompleted",
    "Paused",
    "WaitingForGate",
    "Aborted",
    "Promoted",
    "Healthy",
)
NOTIFICATIONS_OBJECT = "sluice-notifications"
"""The ConfigMap (namespace defaults) and the Secret (receiver URLs) of that name in a namespace."""
RECEIVER_PATTERN = r"^[-._a-zA-Z0-9]+$"
"""A receiver is a key of the Secret, so it has a Secret key's characters."""


class NotificationSubscription(ApiModel):
    """Which transitions go to one receiver."""

    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.events) || self.events.all(e, self.events.exists_one(f, f == e))",
                    "message": "events must not repeat",
                }
            ]
        }
    }

    receiver: str = Field(min_length=1, max_length=253, pattern=RECEIVER_PATTERN)
    """A key of the Secret sluice-notifications in the Rollout's namespace; its value is the
    receiver's apprise URL (slack://, msteams://, discord://, mailto://, json://, form://...).
    URLs carry tokens, so they live in the Secret, never in the Rollout."""
    events: list[NotificationEvent] | None = Field(default=None, min_length=1, max_length=7)
    """The transitions to send (default: all): Progressing, StepCompleted, Paused (waiting for
    a person), WaitingForGate, Aborted, Promoted, Healthy."""

    @model_validator(mode="after")
    def _events_unique(self) -> NotificationSubscription:
        seen: set[str] = set()
        for i, e in enumerate(self.events or []):
            if e in seen:
                raise FieldProblem(f"events.{i}", f"{e} is listed twice")
            seen.add(e)
        return self

    def wants(self, event: str) -> bool:
        return self.events is None or event in self.events


def unique_receivers(subscriptions: list[NotificationSubscription], where: str = "") -> None:
    """One subscription per receiver, so which events a receiver gets is said in one place."""
    seen: set[str] = set()
    for i, s in enumerate(subscriptions):
        if s.receiver in seen:
            raise FieldProblem(f"{where}{i}.receiver", f"receiver {s.receiver} is listed twice")
        seen.add(s.receiver)


class Notifications(ApiModel):
    """Where this Rollout's transitions are announced (docs/notifications.md)."""

    subscriptions: list[NotificationSubscription] = Field(
        default_factory=list,
        max_length=20,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["receiver"],
        },
    )
    """Receivers and the transitions each gets. Empty with namespaceDefaults false: none."""
    namespace_defaults: bool = False
    """Also send to the namespace's default subscriptions (ConfigMap sluice-notifications). A
    Rollout without notifications gets the namespace defaults only."""

    @model_validator(mode="after")
    def _receivers_unique(self) -> Notifications:
        unique_receivers(self.subscriptions, "subscriptions.")
        return self


class RolloutSpec(ApiModel):
    model_config = ApiModel.model_config | {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.template) != has(self.workloadRef)",
                    "message": "must set exactly one of template or workloadRef",
                },
                {
                    "rule": "has(self.workloadRef) || has(self.selector)",
                    "message": "selector is required with template",
                },
            ]
        }
    }

    replicas: NonNegativeInt = 1
    """Pods of the stable revision."""
    selector: LabelSelector = Field(
        default_factory=LabelSelector, json_schema_extra={"default": None}
    )
    """Must match the template's labels; Sluice adds its slot labels on top. With workloadRef,
    the Deployment's selector is used when this is not set."""
    template: dict[str, Any] = Field(
        default_factory=dict,
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True, "default": None},
    )
    """Pod template, as in a Deployment; a change to it is a new revision."""
    workload_ref: WorkloadRef | None = None
    """Run the pod template of an existing Deployment instead of a template (adoption)."""
    revision_history_limit: NonNegativeInt = 10
    """How many past rollouts (Promoted, Aborted, Superseded) status.history keeps."""
    progress_deadline_seconds: NonNegativeInt = 600
    """Abort when pods make no progress for this long (pauses and analysis do not count)."""
    strategy: Strategy
    """Exactly one of canary or blueGreen."""
    notifications: Notifications | None = None
    """Messages on transitions (started, step completed, paused, aborted, promoted, Healthy) to
    Slack, Teams, Discord, e-mail or webhooks; absent: the namespace's defaults, if any."""

    @model_validator(mode="after")
    def _template_or_workload(self) -> RolloutSpec:
        """The pods come from exactly one place: the Rollout's template or the Deployment's."""
        if self.workload_ref is not None and self.template:
            raise ValueError("must set exactly one of template or workloadRef (got both)")
        if self.workload_ref is None and not self.template:
            raise FieldProblem("template", "is required (or workloadRef)")
        return self

    @model_validator(mode="wrap")
    @classmethod
    def _selector_required(cls, data: Any, handler: Any) -> Any:
        """``selector`` is required unless workloadRef gives the Deployment's; reported with the
        other missing fields (an after-validator would not run once a field has failed)."""
        missing = (
            isinstance(data, dict)
            and "selector" not in data
            and data.get("workloadRef", data.get("workload_ref")) is None
        )
        selector = InitErrorDetails(type="missing", loc=("selector",), input=data)
        try:
            out = handler(data)
        except ValidationError as e:
            if not missing:
                raise
            errors = [
                InitErrorDetails(type=err["type"], loc=err["loc"], input=err["input"])
                if "ctx" not in err
                else InitErrorDetails(
                    type=err["type"], loc=err["loc"], input=err["input"], ctx=err["ctx"]
                )
                for err in e.errors()
            ]
            raise ValidationError.from_exception_data(e.title, [*errors, selector]) from None
        if missing:
            raise ValidationError.from_exception_data(cls.__name__, [selector])
        return out

    @model_validator(mode="after")
    def _selector_matches_template(self) -> RolloutSpec:
        """A selector that does not match the template's labels would orphan every pod (with
        workloadRef the Deployment's template is checked when it is read)."""
        if self.workload_ref is not None:
            return self
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
    reason: Literal[
        "CanaryPauseStep",
        "BlueGreenPause",
        "PausedByUser",
        "InconclusiveAnalysis",
        "WaitingForGate",
    ]
    start_time: AwareDatetime


class AbortInfo(StatusModel):
    reason: str
    message: str
    time: AwareDatetime
    revision: str
    metric: str | None = None
    """The analysis metric whose verdict aborted the rollout (reason AnalysisFailed), when one
    metric decided it."""


class HistoryEntry(StatusModel):
    revision: str
    outcome: Literal["Promoted", "Aborted", "Superseded"]
    time: AwareDatetime
    message: str = ""


class AnalysisMetricStatus(StatusModel):
    """One metric's current evidence, compact enough for ``kubectl get -o yaml`` and the CLI.

    ``evidence`` is the very record the statistics produced and the AnalysisRun of the same name
    holds (with its measurements and e-process state): e-values in log space, ``logEValue`` against
    ``logThreshold`` = log(1/alpha), so nothing is lost to exponentiating and back."""

    name: str
    phase: str = "Pending"
    """The metric's own phase: Running, Successful, Failed, Inconclusive or Error."""
    evidence: Evidence | None = None
    """The verdict's evidence: method, outcome, estimate and interval, the log e-value against
    its log threshold (sequential tests) or the statistic against its threshold, events, rule."""
    measurements: int = 0
    """Measurements taken so far (all phases)."""
    dry_run: bool = False
    message: str = ""

    @model_validator(mode="before")
    @classmethod
    def _read_legacy(cls, data: Any) -> Any:
        """Read the flat form earlier versions wrote (``eValue`` against ``threshold``, both
        exponentiated, beside ``method``, ``outcome``, ...), so a Rollout whose status was written
        before an upgrade is not mistaken for an invalid one; the next analysis tick rewrites it."""
        if not isinstance(data, dict) or not _LEGACY_METRIC_FIELDS & set(data):
            return data
        out = {k: v for k, v in data.items() if k not in _LEGACY_METRIC_FIELDS}
        if data.get("method") and data.get("outcome") and "evidence" not in out:
            e_value, bar = data.get("eValue"), data.get("threshold")
            sequential = e_value is not None
            out["evidence"] = {
                "method": data["method"],
                "outcome": data["outcome"],
                "estimate": data.get("estimate"),
                "interval": data.get("interval"),
                "logEValue": _log(e_value) if sequential else None,
                "logThreshold": _log(bar) if sequential else None,
                "statistic": None if sequential else data.get("statistic"),
                "threshold": None if sequential else bar,
                "events": data.get("events") or 0,
            }
        return out


_LEGACY_METRIC_FIELDS = frozenset(
    {"method", "outcome", "estimate", "interval", "eValue", "statistic", "threshold", "events"}
)


def _log(x: Any) -> float | None:
    return math.log(x) if isinstance(x, int | float) and x > 0 else None


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


class GateStatus(StatusModel):
    """The gate the rollout waits on (or last passed), as last asked."""

    url: str
    state: Literal["Waiting", "Open"]
    """Waiting: the last answer was not HTTP 200. Open: it was, and the rollout moved on."""
    answer: str = ""
    """The last answer, short: `HTTP 403`, `timeout after 2s`, `connection refused`."""
    checked_at: AwareDatetime | None = None
    """When it was last asked."""
    next_check_at: AwareDatetime | None = None
    """When it will be asked again while waiting (backoff)."""


class ScaleDown(StatusModel):
    """A slot waiting out its scale-down delay (kept in status so a restart does not lose it)."""

    slot: SlotName
    at: AwareDatetime


class SentNotification(StatusModel):
    """A transition already announced: written in the status write that decided it, so neither a
    later reconcile nor a restarted controller announces it again."""

    event: str
    revision: str | None = None
    attempt: int | None = None
    step: int | None = None
    """The step the event is about, numbered from 1 (StepCompleted, Paused), else absent."""
    at: AwareDatetime


class NotificationStatus(StatusModel):
    sent: list[SentNotification] = Field(default_factory=list)
    """The latest transitions announced (at most 20), newest last."""


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
    weight_changed_at: AwareDatetime | None = None
    """When Sluice last changed the canary weight: analysis windows are cut there, so none mixes
    two traffic splits."""
    pause_conditions: list[PauseCondition] = Field(default_factory=list)
    abort: AbortInfo | None = None
    promoted_at: AwareDatetime | None = None
    analysis_runs: list[AnalysisRunRecord] = Field(default_factory=list)
    scale_downs: list[ScaleDown] = Field(default_factory=list)
    gate: GateStatus | None = None
    """The gate step or pre-promotion gate being waited on, or the last one passed."""
    last_request: str | None = None
    last_request_ignored: str | None = None
    """Why the last request was not acted on (the RequestIgnored Event's message), or absent when
    it was: kept in status so ``sluice promote`` and the dashboard can say why without racing the
    Event, which is posted after the status is written."""
    adopted: bool | None = None
    """With workloadRef: the Rollout's pods have taken over the Deployment's traffic."""
    notifications: NotificationStatus | None = None
    """Transitions handed to the notification sender (at most once each: docs/notifications.md)."""
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
