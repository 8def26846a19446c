"""The analysis contract: AnalysisTemplate, ClusterAnalysisTemplate and AnalysisRun.

As with the Rollout, these models are the single source of truth: `python -m rollouts.api.crd`
turns them into CRDs (with CEL rules mirroring the cross-field validators below), the reference page
is generated from those, and the controller and `sluice lint` validate with the models. They live
in `analysis` because `rollouts` may import `analysis` but never the reverse.

A template says *what* to measure (PromQL per arm, with `{{args.NAME}}` placeholders) and *how
to judge* it (`compare` canary against baseline, or an absolute `threshold`). An AnalysisRun is
Sluice's record of one analysis of one rollout: the metrics with their arguments already rendered,
so a later edit of the template cannot change a run in flight, and the status with its evidence.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import jsonpath_ng
from pydantic import AwareDatetime, Field, ValidationError, field_validator, model_validator
from pydantic.config import JsonDict

from analysis import templating
from analysis.api_conventions import (
    ApiModel,
    Duration,
    FieldProblem,
    NonNegativeInt,
    StatusModel,
    at_most_one,
    at_most_one_rule,
    exactly_one,
    one_of_rule,
    parse_duration,
    problems_of,
    with_rules,
)
from analysis.stats.evidence import Evidence, FiniteNumber

API_GROUP = "sluice.dev"
API_VERSION = "v1alpha1"
LABEL_ROLLOUT = "sluice.dev/rollout"
LABEL_REVISION = "sluice.dev/revision"
MAX_MEASUREMENTS = 10
"""Measurements each metric keeps in AnalysisRun status; the evidence summarises the rest."""

BUILTIN_ARGS: tuple[str, ...] = (
    "rollout",
    "namespace",
    "canary-slot",
    "stable-slot",
    "canary-revision",
    "stable-revision",
    "canary-service",
    "stable-service",
)
"""Arguments every run gets from its Rollout without the template declaring them. For blue-green,
the preview Service and slot are the canary's, the active ones the stable's."""

_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_MAP_LIST: JsonDict = {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]}
"""A list keyed by `name`: the API server itself then refuses two items with one name."""

MetricKind = Literal["counts", "histogram", "gauge", "value"]
RunPhase = Literal["Pending", "Running", "Successful", "Failed", "Inconclusive", "Error"]
RunStatusPhase = Literal[
    "Pending", "Running", "Successful", "Failed", "Inconclusive", "Error", "Stopped"
]
"""A run's own phase: a metric's phases, plus Stopped for a run Sluice ended before a verdict
(the rollout was promoted, aborted or superseded), so `kubectl get analysisruns` never shows a
run nobody measures any more as Running."""
RunKind = Literal["step", "background", "prePromotion", "postPromotion"]
InconclusivePolicy = Literal["pause", "promote", "abort"]


class InvalidAnalysisSpec(ValueError):
    """An analysis object failed validation; `problems` holds one message per offending field."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


# ---------------------------------------------------------------------------------------------
# templates
# ---------------------------------------------------------------------------------------------


class Arg(ApiModel):
    """A template argument. In an AnalysisRun every arg carries the value the run used."""

    name: str = Field(pattern=f"^{templating.ARG_NAME}$", max_length=63)
    """Referenced in queries as `{{args.NAME}}`."""
    value: str | None = None
    """The default, used when the Rollout passes no value; without one the Rollout must."""


class SecretRef(ApiModel):
    name: str = Field(min_length=1)
    """A Secret in the Rollout's namespace."""


class PrometheusAuth(ApiModel):
    """Credentials for Prometheus, read from a Secret: a bearer token, or basic auth."""

    model_config = with_rules(
        {
            "rule": "has(self.usernameKey) == has(self.passwordKey)",
            "message": "usernameKey and passwordKey go together",
        },
        {
            "rule": "has(self.bearerTokenKey) != has(self.usernameKey)",
            "message": "must set exactly one of bearerTokenKey or usernameKey and passwordKey",
        },
    )

    secret_ref: SecretRef
    """The Secret holding the credentials."""
    bearer_token_key: str | None = Field(default=None, min_length=1)
    """Key of the Secret holding a bearer token."""
    username_key: str | None = Field(default=None, min_length=1)
    """Key of the Secret holding the basic-auth user name."""
    password_key: str | None = Field(default=None, min_length=1)
    """Key of the Secret holding the basic-auth password."""

    @model_validator(mode="after")
    def _one_scheme(self) -> PrometheusAuth:
        if (self.username_key is None) != (self.password_key is None):
            missing = "passwordKey" if self.password_key is None else "usernameKey"
            raise FieldProblem(missing, "is required with basic auth")
        basic = self.username_key if self.username_key is not None else None
        if (self.bearer_token_key is None) == (basic is None):
            raise ValueError(
                "must set exactly one of bearerTokenKey or usernameKey and passwordKey"
            )
        return self


class ArmQueries(ApiModel):
    """The PromQL of one arm (canary or baseline); which queries depends on the metric's kind."""

    events: str | None = Field(default=None, min_length=1)
    """kind counts: the events (errors, slow requests) in the window, e.g. `sum(increase(...))`."""
    total: str | None = Field(default=None, min_length=1)
    """kind counts: all requests in the window."""
    buckets: str | None = Field(default=None, min_length=1)
    """kind histogram: bucket counters increased over the window, one series per `le`."""
    value: str | None = Field(default=None, min_length=1)
    """kind gauge: one number per window (CPU per request, memory, queue depth)."""

    def queries(self) -> Iterator[tuple[str, str]]:
        """(field, PromQL) of each query that is set."""
        for name in ("events", "total", "buckets", "value"):
            query = getattr(self, name)
            if query is not None:
                yield name, query


ARM_QUERIES: Mapping[str, tuple[str, ...]] = {
    "counts": ("events", "total"),
    "histogram": ("buckets",),
    "gauge": ("value",),
}
"""Which ArmQueries fields each compared kind needs (and the only ones it may set)."""


class PrometheusSpec(ApiModel):
    """Where and what to ask Prometheus. Either `query` (a threshold judges it) or a pair of
    `canary` and `baseline` queries (compared with each other)."""

    model_config = with_rules(
        {
            "rule": "has(self.canary) == has(self.baseline)",
            "message": "canary and baseline go together",
        },
        {
            "rule": "has(self.query) != has(self.canary)",
            "message": "must set exactly one of query or the canary and baseline pair",
        },
    )

    address: str | None = Field(default=None, pattern=r"^https?://\S+$")
    """Base URL of Prometheus; default: the controller's Prometheus address setting."""
    timeout: Duration = "10s"
    """How long one query may take before the measurement is an Error."""
    auth: PrometheusAuth | None = None
    """Credentials; none by default."""
    query: str | None = Field(default=None, min_length=1)
    """The query a threshold judges (kinds value and gauge); one number per measurement."""
    canary: ArmQueries | None = None
    """The canary arm's queries, for compare."""
    baseline: ArmQueries | None = None
    """The baseline arm's queries (usually the stable pods), for compare."""

    @field_validator("timeout")
    @classmethod
    def _positive_timeout(cls, value: str | int) -> str | int:
        if parse_duration(value) <= 0:
            raise ValueError("must be longer than 0s")
        return value

    @model_validator(mode="after")
    def _query_or_arms(self) -> PrometheusSpec:
        if (self.canary is None) != (self.baseline is None):
            missing = "baseline" if self.baseline is None else "canary"
            raise FieldProblem(missing, "is required: canary and baseline go together")
        pair = self.canary if self.canary is not None else None
        if (self.query is None) == (pair is None):
            got = "both" if self.query is not None else "neither"
            raise ValueError(
                f"must set exactly one of query or the canary and baseline pair (got {got})"
            )
        return self

    @property
    def timeout_seconds(self) -> int:
        return parse_duration(self.timeout)

    def queries(self) -> Iterator[tuple[str, str]]:
        """(field path below the provider, PromQL) of every query, for checks and rendering."""
        if self.query is not None:
            yield "query", self.query
        for arm_name, arm in (("canary", self.canary), ("baseline", self.baseline)):
            if arm is not None:
                for name, query in arm.queries():
                    yield f"{arm_name}.{name}", query


class SecretKeyRef(ApiModel):
    name: str = Field(min_length=1)
    """A Secret in the Rollout's namespace."""
    key: str = Field(min_length=1)
    """The key of that Secret whose value is used."""


class HeaderSource(ApiModel):
    secret_key_ref: SecretKeyRef
    """Read the header's value from a Secret (tokens stay out of the template)."""


class WebHeader(ApiModel):
    """One request header: a literal value, or one read from a Secret."""

    model_config = with_rules(one_of_rule("value", "valueFrom"))

    name: str = Field(pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", max_length=256)
    """The header's name (an HTTP token)."""
    value: str | None = Field(default=None, pattern=r"^[^\r\n]*$")
    """The literal value; `{{args.NAME}}` placeholders are filled in (CR and LF refused)."""
    value_from: HeaderSource | None = None
    """Where to read the value instead."""

    @model_validator(mode="after")
    def _one_source(self) -> WebHeader:
        exactly_one(value=self.value, valueFrom=self.value_from)
        return self


class WebSpec(ApiModel):
    """An HTTP endpoint answering with JSON: a smoke test, a conformance suite's result, an SLO
    API. One request per measurement; the number at `jsonPath` is judged by the threshold."""

    model_config = with_rules(
        {
            "rule": "!has(self.body) || self.method == 'POST'",
            "message": "body needs method POST",
        }
    )

    url: str = Field(pattern=r"^https?://\S+$", max_length=2048)
    """`http://` or `https://` URL. `{{args.NAME}}` is percent-encoded into the path, query or
    fragment; in the host only a value that is a DNS name (letters, digits, `-`, `.`) is accepted;
    never in the scheme or port."""
    method: Literal["GET", "POST"] = "GET"
    """GET, or POST with `body`."""
    headers: list[WebHeader] = Field(default_factory=list, max_length=20)
    """Request headers, for example an `Authorization` header read from a Secret."""
    body: str | None = None
    """The POST body, sent as is; `{{args.NAME}}` renders as a JSON string literal (quotes
    included), so a value never changes the body's JSON structure."""
    timeout: Duration = "10s"
    """How long one request may take before the measurement is an Error."""
    json_path: str | None = Field(default=None, min_length=1)
    """A JSONPath (`$.checks.passed`) into the JSON answer that must match exactly one number or
    boolean (true is 1, false 0); without it the whole answer must be that number or boolean."""

    @field_validator("timeout")
    @classmethod
    def _positive_timeout(cls, value: str | int) -> str | int:
        if parse_duration(value) <= 0:
            raise ValueError("must be longer than 0s")
        return value

    @field_validator("json_path")
    @classmethod
    def _parsable_path(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                jsonpath_ng.parse(value)
            except Exception as e:  # jsonpath-ng raises bare Exception subclasses of its own
                raise ValueError(f"is not a JSONPath: {e}") from None
        return value

    @model_validator(mode="after")
    def _body_with_post(self) -> WebSpec:
        if self.body is not None and self.method != "POST":
            raise FieldProblem("body", f"needs method POST (got {self.method})")
        return self

    @property
    def timeout_seconds(self) -> int:
        return parse_duration(self.timeout)

    def templates(self) -> Iterator[tuple[str, str]]:
        """(field path below the provider, text) of every field placeholders may appear in."""
        yield "url", self.url
        for i, header in enumerate(self.headers):
            if header.value is not None:
                yield f"headers.{i}.value", header.value
        if self.body is not None:
            yield "body", self.body


class JobMetadata(ApiModel):
    labels: dict[str, str] | None = None
    """Labels of the Job (Sluice adds its own `sluice.dev/*` labels)."""
    annotations: dict[str, str] | None = None
    """Annotations of the Job."""


class JobCheck(ApiModel):
    """A Kubernetes Job run as a check (a test suite, a load test, a conformance run). Its
    measurement is 1 when the Job succeeds and 0 when it fails (or its activeDeadlineSeconds
    passes): judge it with `threshold: {min: 1}`."""

    metadata: JobMetadata | None = None
    """Labels and annotations of the Job."""
    spec: dict[str, Any] = Field(
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True, "type": "object"}
    )
    """A batch/v1 JobSpec (`template`, `backoffLimit`, `activeDeadlineSeconds`, ...), used as
    written: no argument is filled in."""

    @field_validator("spec")
    @classmethod
    def _has_template(cls, spec: dict[str, Any]) -> dict[str, Any]:
        template = spec.get("template")
        if not isinstance(template, dict) or not isinstance(template.get("spec"), dict):
            raise ValueError("must hold a pod template: template.spec with the containers")
        return spec


class Provider(ApiModel):
    """Where measurements come from: exactly one provider."""

    model_config = with_rules(one_of_rule("prometheus", "web", "job"))

    prometheus: PrometheusSpec | None = None
    """Prometheus: PromQL per arm (compare) or one query (threshold)."""
    web: WebSpec | None = None
    """An HTTP endpoint answering JSON, judged by a threshold (kind value)."""
    job: JobCheck | None = None
    """A Kubernetes Job: 1 when it succeeds, 0 when it fails (threshold min 1, kind value)."""

    @model_validator(mode="after")
    def _one(self) -> Provider:
        exactly_one(prometheus=self.prometheus, web=self.web, job=self.job)
        return self


DEFAULT_TOLERANCE = 1.1
LATENCY_INCREASE_MAX = 10.0
"""At most +1000%: beyond that a latency tolerance tolerates everything a histogram can show."""


class LatencyTolerance(ApiModel):
    """How much latency may grow before it is a regression, in latency units (kind histogram):
    `{quantile: 0.99, increase: "10%"}` reads "p99, and the rarer quantiles, may grow by 10%"."""

    quantile: float = Field(default=0.9, gt=0, lt=1, allow_inf_nan=False)
    """The lowest quantile the tolerance covers. Edges are chosen near the baseline's quantile
    and each tenfold rarer one up to p99.9 (0.9: p90, p99, p99.9; 0.99: p99, p99.9), from the
    baseline alone, before any evidence is taken."""
    increase: str = Field(pattern=r"^[0-9]+(\.[0-9]+)?%$", max_length=16)
    """How much those quantiles of the canary may exceed the baseline's, as a percentage
    (`"10%"`: the canary's p99 may be up to 1.1 times the baseline's)."""

    @field_validator("increase")
    @classmethod
    def _positive(cls, value: str) -> str:
        x = float(value[:-1]) / 100
        if not 0 < x <= LATENCY_INCREASE_MAX:
            raise ValueError(f"must be above 0% and at most {100 * LATENCY_INCREASE_MAX:g}%")
        return value

    @property
    def fraction(self) -> float:
        """The increase as a fraction: "10%" is 0.1."""
        return float(self.increase[:-1]) / 100


class Compare(ApiModel):
    """Judge the canary against the baseline over the same windows."""

    model_config = with_rules(
        {
            "rule": (
                f"!has(self.latencyTolerance) || !has(self.tolerance) || "
                f"self.tolerance == {DEFAULT_TOLERANCE}"
            ),
            "message": "tolerance does not apply with latencyTolerance (which sets it in latency "
            "units)",
        }
    )

    method: Literal["sequential", "mann-whitney"] = "sequential"
    """`sequential`: an anytime-valid test, checked every interval with the false-abort rate
    still bounded by alpha. `mann-whitney`: Kayenta's fixed-horizon test on the measurements
    (kinds counts and gauge)."""
    direction: Literal["increase", "decrease", "either"] = "increase"
    """Which change is bad: an increase (errors, latency), a decrease (throughput), or either."""
    tolerance: float = Field(default=DEFAULT_TOLERANCE, gt=0, allow_inf_nan=False)
    """The ratio canary/baseline still fine (r0): harmless pod-to-pod differences must not abort.
    For kind histogram without `latencyTolerance`, a ratio of slow-request rates at each edge."""
    alpha: float | None = Field(default=None, gt=0, lt=1, allow_inf_nan=False)
    """This metric's share of the rollout's false-abort rate (0.05); default: an equal split of
    what explicit shares leave. Explicit shares over the rate, or none left for a metric without
    one, are an error naming this field. A metric in both background and step analysis draws its
    share once (the two split it). In an AnalysisRun: the share the run was created with."""
    critical: bool = True
    """Must be shown within tolerance before a step promotes (every metric can abort)."""
    edges: list[float] | None = Field(default=None, min_length=1, max_length=10)
    """kind histogram: fixed latency edges in seconds whose exceedance rates are compared;
    default: chosen from the baseline's distribution before the rollout starts."""
    pod_model: bool | None = None
    """kind counts, sequential: judge pods as the sampling unit (the default; `false` turns it
    off), with the canary's pod count taken from the Rollout (its smallest over the steps the
    analysis judges; recorded in the run as `canaryPods`). The tolerance is widened by the
    between-pod spread for that many pods, so an identical version whose pods differ is not
    aborted (docs/analysis.md, "Pods are the sampling unit"). The events and total queries may
    return one series per pod (`sum by (pod) (...)`, label `pod`): the spread is then estimated
    from the baseline's pods, including the hour before the analysis. `true` makes a missing pod
    count an error; by default a run whose owner gives none judges requests as before."""
    canary_pods: int | None = Field(default=None, ge=1, le=10000)
    """kind counts, sequential: judge pods as the sampling unit (as `podModel`) with this many
    canary pods instead of the count the Rollout gives: an override (the pods that take the
    canary's traffic when the Rollout's replicas do not say it). In an AnalysisRun: the count
    the run judges with. Unset, with neither `podModel` nor `podSpread`: no widening."""
    pod_spread: float | None = Field(default=None, ge=0, le=3, allow_inf_nan=False)
    """kind counts, sequential: the expected between-pod spread of event rates (standard
    deviation of their logarithms; 0.1 = pods about 10% apart); turns the pod model on. Default
    (with `podModel` or `canaryPods`): estimated from per-pod series when the queries return
    them, else 0.1, which holds for typical fleets of one image on like nodes; set it when your
    pods are known to differ more (or less: 0 turns the widening off)."""

    @property
    def pods(self) -> bool:
        """Whether pods are the sampling unit: by default, unless `podModel: false` (issue 12:
        the null is "canary pods behave like baseline pods", not "like the fleet's requests")."""
        return self.pod_model is not False

    @property
    def pods_asked(self) -> bool:
        """Whether the template asked for the pod model itself (then a missing count is an
        error rather than a quiet fall-back to judging requests)."""
        return bool(self.pod_model) or self.canary_pods is not None or self.pod_spread is not None

    latency_tolerance: LatencyTolerance | None = None
    """kind histogram: the tolerance in latency units ("p99 may grow by 10%") instead of a ratio
    of slow-request rates; see docs/analysis.md."""

    @field_validator("edges")
    @classmethod
    def _increasing(cls, edges: list[float] | None) -> list[float] | None:
        if edges is None:
            return None
        if any(not math.isfinite(e) or e <= 0 for e in edges):
            raise ValueError("must be positive numbers of seconds")
        if any(b <= a for a, b in itertools.pairwise(edges)):
            raise ValueError("must be strictly increasing")
        return edges

    @model_validator(mode="after")
    def _one_tolerance(self) -> Compare:
        if self.latency_tolerance is not None and self.tolerance != DEFAULT_TOLERANCE:
            raise FieldProblem(
                "tolerance",
                f"does not apply with latencyTolerance (which sets the tolerance in latency "
                f"units); remove it (got {self.tolerance:g})",
            )
        return self


class Threshold(ApiModel):
    """Judge each measurement against an absolute bound, as Argo Rollouts and Flagger do."""

    model_config = with_rules(
        {"rule": "has(self.min) || has(self.max)", "message": "must set min or max (or both)"},
        {
            "rule": "!has(self.min) || !has(self.max) || self.min <= self.max",
            "message": "min must not exceed max",
        },
    )

    min: float | None = Field(default=None, allow_inf_nan=False)
    """A measurement below this fails."""
    max: float | None = Field(default=None, allow_inf_nan=False)
    """A measurement above this fails."""
    failure_limit: NonNegativeInt = 0
    """The run fails when more measurements than this fail."""
    inconclusive_limit: NonNegativeInt = 0
    """The run is inconclusive when more measurements than this are inconclusive."""
    consecutive_error_limit: NonNegativeInt = 4
    """The run errs when more measurements than this in a row could not be taken."""

    @model_validator(mode="after")
    def _bounds(self) -> Threshold:
        if self.min is None and self.max is None:
            raise ValueError("must set min or max (or both)")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise FieldProblem("min", f"must not exceed max ({self.min:g} > {self.max:g})")
        return self


_P = "self.provider.prometheus"
_METRIC_RULES = (
    one_of_rule("compare", "threshold"),
    at_most_one_rule("count", "duration"),
    {
        "rule": (
            f"!has(self.threshold) || !has({_P}) || "
            f"(self.kind in ['value', 'gauge'] && has({_P}.query))"
        ),
        "message": "threshold needs kind value or gauge and provider.prometheus.query",
    },
    {
        "rule": "!has(self.provider.web) || (has(self.threshold) && self.kind == 'value')",
        "message": "provider.web needs a threshold and kind value",
    },
    {
        "rule": (
            "!has(self.provider.job) || "
            "(has(self.threshold) && self.kind == 'value' && has(self.count))"
        ),
        "message": "provider.job needs a threshold, kind value and count",
    },
    {
        "rule": (
            f"!has(self.compare) || "
            f"(self.kind != 'value' && has({_P}) && has({_P}.canary) && has({_P}.baseline))"
        ),
        "message": (
            "compare needs kind counts, histogram or gauge and provider.prometheus canary and "
            "baseline queries"
        ),
    },
    {
        "rule": (
            f"!has({_P}) || !has({_P}.canary) || !has({_P}.baseline) || [{_P}.canary, {_P}.baseline].all(a, "
            "has(a.events) == (self.kind == 'counts') && has(a.total) == (self.kind == 'counts') "
            "&& has(a.buckets) == (self.kind == 'histogram') "
            "&& has(a.value) == (self.kind == 'gauge'))"
        ),
        "message": (
            "canary and baseline give exactly the queries of the kind: events and total (counts), "
            "buckets (histogram), value (gauge)"
        ),
    },
    {
        "rule": (
            "!has(self.compare) || !has(self.compare.method) || "
            "self.compare.method != 'mann-whitney' || self.kind in ['counts', 'gauge']"
        ),
        "message": "mann-whitney needs kind counts or gauge",
    },
    {
        "rule": "!has(self.compare) || !has(self.compare.edges) || self.kind == 'histogram'",
        "message": "compare.edges applies to kind histogram only",
    },
    {
        "rule": (
            "!has(self.compare) || (!has(self.compare.canaryPods) && !has(self.compare.podSpread)"
            " && (!has(self.compare.podModel) || !self.compare.podModel))"
            " || (self.kind == 'counts' && (!has(self.compare.method) || "
            "self.compare.method == 'sequential'))"
        ),
        "message": (
            "compare.podModel, compare.canaryPods and compare.podSpread apply to sequential kind "
            "counts only"
        ),
    },
    {
        "rule": (
            "!has(self.compare) || !has(self.compare.latencyTolerance) || self.kind == 'histogram'"
        ),
        "message": "compare.latencyTolerance applies to kind histogram only",
    },
)


class Metric(ApiModel):
    """One measurement and its judgement: exactly one of `compare` or `threshold`."""

    model_config = with_rules(*_METRIC_RULES)

    name: str = Field(min_length=1, max_length=63, pattern=_DNS_LABEL)
    """Unique within the template; names the metric in status, events and abort messages."""
    kind: MetricKind
    """What the queries return: `counts` (events and totals), `histogram` (bucket counters),
    `gauge` (saturation), `value` (a plain number)."""
    interval: Duration = "30s"
    """A measurement every interval; each query's window (`{{window}}`) is the interval."""
    initial_delay: Duration = "0s"
    """Warm-up before the first measurement counts as evidence."""
    count: int | None = Field(default=None, ge=1)
    """At most this many measurements (for a threshold, completed ones: errors do not count);
    with neither count nor duration, until stopped."""
    duration: Duration | None = None
    """At most this long."""
    dry_run: bool = False
    """Evaluate and report, but never fail the run."""
    provider: Provider
    """Where the measurements come from."""
    compare: Compare | None = None
    """Judge canary against baseline."""
    threshold: Threshold | None = None
    """Judge each measurement against an absolute bound."""

    @field_validator("interval")
    @classmethod
    def _positive_interval(cls, value: str | int) -> str | int:
        if parse_duration(value) <= 0:
            raise ValueError("must be longer than 0s")
        return value

    @property
    def judges_pods(self) -> bool:
        """Pods are the sampling unit: a sequential counts compare, unless `podModel: false`."""
        c = self.compare
        return c is not None and c.pods and self.kind == "counts" and c.method == "sequential"

    @model_validator(mode="after")
    def _consistent(self) -> Metric:
        exactly_one(compare=self.compare, threshold=self.threshold)
        at_most_one(count=self.count, duration=self.duration)
        other = "web" if self.provider.web is not None else "job" if self.provider.job else None
        if other is not None:
            if self.compare is not None:
                raise FieldProblem("compare", f"provider.{other} is judged by a threshold")
            if self.kind != "value":
                raise FieldProblem(
                    "kind", f"provider.{other} measures kind value (got {self.kind})"
                )
            if other == "job" and self.count is None:
                raise FieldProblem("count", "is required with provider.job (one Job per count)")
            return self
        prom = self.provider.prometheus
        assert prom is not None  # Provider holds exactly one
        if self.threshold is not None:
            if self.kind not in ("value", "gauge"):
                raise FieldProblem(
                    "kind", f"a threshold judges kind value or gauge (got {self.kind})"
                )
            if prom.query is None:
                raise FieldProblem("provider.prometheus.query", "is required with threshold")
        if self.compare is not None:
            self._check_compare(self.compare)
        return self

    def _check_compare(self, compare: Compare) -> None:
        prom = self.provider.prometheus
        assert prom is not None
        if self.kind == "value":
            raise FieldProblem("kind", "compare needs kind counts, histogram or gauge (got value)")
        if prom.canary is None or prom.baseline is None:
            raise FieldProblem(
                "provider.prometheus.canary", "is required with compare (with baseline)"
            )
        wanted = ARM_QUERIES[self.kind]
        for arm_name, arm in (("canary", prom.canary), ("baseline", prom.baseline)):
            for name in ("events", "total", "buckets", "value"):
                where = f"provider.prometheus.{arm_name}.{name}"
                has = getattr(arm, name) is not None
                if name in wanted and not has:
                    raise FieldProblem(where, f"is required for kind {self.kind}")
                if has and name not in wanted:
                    raise FieldProblem(where, f"does not apply to kind {self.kind}")
        if compare.method == "mann-whitney" and self.kind not in ("counts", "gauge"):
            raise FieldProblem(
                "compare.method", f"mann-whitney needs kind counts or gauge (got {self.kind})"
            )
        if compare.edges is not None and self.kind != "histogram":
            raise FieldProblem("compare.edges", f"applies to kind histogram only (got {self.kind})")
        for name, value in (
            ("podModel", compare.pod_model or None),
            ("canaryPods", compare.canary_pods),
            ("podSpread", compare.pod_spread),
        ):
            if value is not None and (self.kind != "counts" or compare.method != "sequential"):
                raise FieldProblem(
                    f"compare.{name}",
                    f"applies to sequential kind counts only (got {compare.method} {self.kind})",
                )
        if compare.latency_tolerance is not None and self.kind != "histogram":
            raise FieldProblem(
                "compare.latencyTolerance", f"applies to kind histogram only (got {self.kind})"
            )

    @property
    def interval_seconds(self) -> int:
        return parse_duration(self.interval)

    @property
    def initial_delay_seconds(self) -> int:
        return parse_duration(self.initial_delay)

    @property
    def duration_seconds(self) -> int | None:
        return None if self.duration is None else parse_duration(self.duration)


def _unique_names(items: Sequence[Arg | Metric], field: str) -> None:
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        if item.name in seen:
            raise FieldProblem(
                f"{field}.{i}.name", f"duplicates {field}[{seen[item.name]}].name {item.name!r}"
            )
        seen[item.name] = i


def _check_queries(metrics: list[Metric], allowed: set[str]) -> None:
    for i, metric in enumerate(metrics):
        prom, web = metric.provider.prometheus, metric.provider.web
        for where, query in prom.queries() if prom is not None else ():
            try:
                templating.check(query, allowed)
            except templating.TemplateError as e:
                raise FieldProblem(f"metrics.{i}.provider.prometheus.{where}", str(e)) from None
        for where, text in web.templates() if web is not None else ():
            try:
                if where == "url":
                    templating.check_url(text, allowed)
                else:
                    templating.check_text(text, allowed)
            except templating.TemplateError as e:
                raise FieldProblem(f"metrics.{i}.provider.web.{where}", str(e)) from None


class AnalysisTemplateSpec(ApiModel):
    args: list[Arg] = Field(default_factory=list, max_length=50, json_schema_extra=_MAP_LIST)
    """Arguments the queries use; values come from the Rollout's analysis `args`, else the
    default. The built-in args (rollout, namespace, canary-slot, stable-slot, canary-revision,
    stable-revision, canary-service, stable-service) need no declaration."""
    metrics: list[Metric] = Field(min_length=1, max_length=20, json_schema_extra=_MAP_LIST)
    """Every metric judges the canary; any failing metric fails the run."""
    inconclusive: InconclusivePolicy = "pause"
    """What a run that ends inconclusive does to the rollout: pause for a person, promote, or
    abort."""

    @model_validator(mode="after")
    def _consistent(self) -> AnalysisTemplateSpec:
        _unique_names(self.args, "args")
        _unique_names(self.metrics, "metrics")
        _check_queries(self.metrics, {a.name for a in self.args} | set(BUILTIN_ARGS))
        return self


class ObjectMeta(ApiModel):
    """The metadata Sluice reads; everything else the API server sends is kept but ignored."""

    model_config = ApiModel.model_config | {"extra": "allow"}

    name: str = Field(min_length=1)
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class AnalysisTemplate(ApiModel):
    """Metrics a Rollout's analysis refers to by name, in the Rollout's namespace."""

    api_version: Literal["sluice.dev/v1alpha1"] = "sluice.dev/v1alpha1"
    kind: Literal["AnalysisTemplate"] = "AnalysisTemplate"
    metadata: ObjectMeta
    spec: AnalysisTemplateSpec


class ClusterAnalysisTemplate(ApiModel):
    """An AnalysisTemplate for every namespace (`clusterScope: true` in the Rollout)."""

    api_version: Literal["sluice.dev/v1alpha1"] = "sluice.dev/v1alpha1"
    kind: Literal["ClusterAnalysisTemplate"] = "ClusterAnalysisTemplate"
    metadata: ObjectMeta
    spec: AnalysisTemplateSpec


# ---------------------------------------------------------------------------------------------
# runs
# ---------------------------------------------------------------------------------------------


class AnalysisRunSpec(ApiModel):
    """What Sluice started, frozen at the start: later template edits do not change it."""

    model_config = with_rules(
        {
            "rule": "self.kind != 'step' || has(self.stepIndex)",
            "message": "a step run needs stepIndex",
        }
    )

    rollout: str = Field(min_length=1)
    """The Rollout this run judges (also its owner)."""
    revision: str = Field(min_length=1)
    """The canary revision under analysis."""
    attempt: int = Field(default=1, ge=1)
    """1 for a revision's first rollout, +1 for each retry."""
    kind: RunKind
    """Why the run exists: an analysis step, background analysis, or blue-green pre/post
    promotion."""
    step_index: NonNegativeInt | None = None
    """The analysis step, for kind step."""
    args: list[Arg] = Field(default_factory=list, max_length=100, json_schema_extra=_MAP_LIST)
    """Every argument with the value this run used."""
    metrics: list[Metric] = Field(min_length=1, max_length=100, json_schema_extra=_MAP_LIST)
    """The templates' metrics with their arguments rendered into the queries."""
    inconclusive: InconclusivePolicy = "pause"
    """What an inconclusive end does to the rollout (the strictest of the templates')."""
    alpha: float = Field(default=0.05, gt=0, lt=1, allow_inf_nan=False)
    """The false-abort rate this run may spend, split across its compared metrics."""

    @model_validator(mode="after")
    def _consistent(self) -> AnalysisRunSpec:
        if self.kind == "step" and self.step_index is None:
            raise FieldProblem("stepIndex", "is required for kind step")
        for i, arg in enumerate(self.args):
            if arg.value is None:
                raise FieldProblem(f"args.{i}.value", "is required in a run")
        _unique_names(self.args, "args")
        _unique_names(self.metrics, "metrics")
        _check_queries(self.metrics, set())  # rendered: only {{window}} is left
        return self


class ArmValues(StatusModel):
    """What one compare measurement read from each arm: the canary and the baseline (stable).

    Counts metrics fill the four counts; gauges and Mann-Whitney compares the two values;
    histograms the requests per arm in ``canary`` and ``baseline``."""

    canary: FiniteNumber = None
    """The canary's value (gauges, Mann-Whitney) or its requests (histograms)."""
    baseline: FiniteNumber = None
    """The baseline's value (gauges, Mann-Whitney) or its requests (histograms)."""
    canary_events: FiniteNumber = None
    """Counts: the canary's events (errors) in the window."""
    canary_total: FiniteNumber = None
    """Counts: the canary's requests in the window."""
    baseline_events: FiniteNumber = None
    """Counts: the baseline's events (errors) in the window."""
    baseline_total: FiniteNumber = None
    """Counts: the baseline's requests in the window."""

    def per_arm(self) -> tuple[float | None, float | None]:
        """Each arm's own number: its events per request (counts), else its value."""
        if self.canary_total is not None:
            return (
                _ratio(self.canary_events, self.canary_total),
                _ratio(self.baseline_events, self.baseline_total),
            )
        return self.canary, self.baseline

    def relative(self) -> float | None:
        """One number for a trend: the canary's relative to the baseline's (the canary's own when
        the baseline's is zero or missing, so a trend still shows something)."""
        canary, baseline = self.per_arm()
        if canary is not None and baseline:
            return canary / baseline
        return canary


def _ratio(part: float | None, whole: float | None) -> float | None:
    return part / whole if part is not None and whole else None


class Measurement(StatusModel):
    """One look at a metric."""

    at: AwareDatetime
    """End of the window the measurement covers."""
    phase: RunPhase
    """Successful, Failed or Inconclusive as judged; Error when it could not be taken."""
    value: FiniteNumber = None
    """The measured value (threshold metrics)."""
    values: ArmValues | None = None
    """Per-arm values (compare metrics)."""
    message: str = ""
    """Why, for Error and Inconclusive measurements."""

    def trend_value(self) -> float | None:
        """One number per measurement for a trend: the value (threshold metrics), else the
        canary's relative to the baseline's."""
        if self.value is not None:
            return self.value
        return None if self.values is None else self.values.relative()


class MetricResult(StatusModel):
    """A metric's verdict so far, its counters and its last measurements."""

    name: str
    phase: RunPhase = "Pending"
    measurements: list[Measurement] = Field(default_factory=list)
    """The last measurements (at most 10); older ones live on in the evidence."""
    successful: int = 0
    failed: int = 0
    inconclusive: int = 0
    errors: int = 0
    consecutive_errors: int = 0
    evidence: Evidence | None = None
    """The current verdict's evidence: the record the statistics produced, as is."""

    def record(self, measurement: Measurement) -> None:
        """Append `measurement`, dropping the oldest beyond `MAX_MEASUREMENTS`."""
        self.measurements.append(measurement)
        del self.measurements[:-MAX_MEASUREMENTS]


class AnalysisRunStatus(StatusModel):
    phase: RunStatusPhase = "Pending"
    message: str = ""
    started_at: AwareDatetime | None = None
    finished_at: AwareDatetime | None = None
    metrics: list[MetricResult] = Field(default_factory=list)
    state: dict[str, Any] = Field(
        default_factory=dict, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}
    )
    """The statistics' state (e-processes), so a restarted controller resumes the evidence."""


class AnalysisRun(ApiModel):
    """One analysis of one rollout, created and owned by Sluice."""

    api_version: Literal["sluice.dev/v1alpha1"] = "sluice.dev/v1alpha1"
    kind: Literal["AnalysisRun"] = "AnalysisRun"
    metadata: ObjectMeta
    spec: AnalysisRunSpec
    status: AnalysisRunStatus | None = None


# ---------------------------------------------------------------------------------------------
# parsing
# ---------------------------------------------------------------------------------------------

_TEMPLATE_KINDS: dict[str, type[AnalysisTemplate] | type[ClusterAnalysisTemplate]] = {
    "AnalysisTemplate": AnalysisTemplate,
    "ClusterAnalysisTemplate": ClusterAnalysisTemplate,
}


def _validate(model: type[Any], doc: Mapping[str, Any]) -> Any:
    try:
        return model.model_validate(doc)
    except ValidationError as e:
        raise InvalidAnalysisSpec(problems_of(e)) from None


def parse_template(doc: Any) -> AnalysisTemplate | ClusterAnalysisTemplate:
    """Validate an (Cluster)AnalysisTemplate as it comes from YAML or the API server."""
    if not isinstance(doc, Mapping):
        raise InvalidAnalysisSpec(["an AnalysisTemplate must be a mapping"])
    kind = doc.get("kind", "AnalysisTemplate")
    if kind not in _TEMPLATE_KINDS:
        raise InvalidAnalysisSpec(
            [f"kind: expected AnalysisTemplate or ClusterAnalysisTemplate, got {kind!r}"]
        )
    parsed: AnalysisTemplate | ClusterAnalysisTemplate = _validate(_TEMPLATE_KINDS[kind], doc)
    return parsed


def parse_run(doc: Any) -> AnalysisRun:
    """Validate an AnalysisRun as it comes from the API server."""
    if not isinstance(doc, Mapping):
        raise InvalidAnalysisSpec(["an AnalysisRun must be a mapping"])
    if doc.get("kind", "AnalysisRun") != "AnalysisRun":
        raise InvalidAnalysisSpec([f"kind: expected AnalysisRun, got {doc.get('kind')!r}"])
    run: AnalysisRun = _validate(AnalysisRun, doc)
    return run
