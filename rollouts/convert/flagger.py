"""Flagger (``flagger.app/v1beta1``) Canary and MetricTemplate.

Field names follow Flagger's API types (pkg/apis/flagger/v1beta1/canary.go and metric.go).
Flagger differs from Sluice in shape more than Argo Rollouts does: it takes over a Deployment and
generates the Services and routing objects, and a Canary's analysis is a list of metric checks
with bounds rather than a list of steps. The translation keeps the behaviour:

- the target Deployment is adopted (``workloadRef``, scaled down once the Rollout serves, as
  Flagger scales it to 0 once the primary does);
- the weights Flagger would step through become ``setWeight`` steps, each held one analysis
  interval (``pause``);
- the metric checks become one Sluice AnalysisTemplate (``<canary>-metrics``), run as background
  analysis from the first step, each metric a threshold with Flagger's ``thresholdRange``, its
  query taken from the MetricTemplate with Flagger's variables filled in;
- ``iterations`` without steps (Flagger's blue/green) becomes a blue-green Rollout whose
  pre-promotion analysis takes that many measurements.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rollouts.convert.common import document, metadata
from rollouts.convert.fields import Fields

GROUP = "flagger.app"
DEFAULT_INTERVAL = "1m"
"""Flagger's analysis interval when none is given."""

ROUTERS = {"istio", "gatewayapi", "nginx", "smi", "linkerd", "osm", "kubernetes"}
"""Flagger providers Sluice can take over (``gatewayapi:v1``: the part before the colon)."""


@dataclass(frozen=True)
class Inputs:
    """The other documents a Canary needs: its Deployment and the MetricTemplates it uses."""

    deployments: Mapping[tuple[str, str], Mapping[str, Any]]
    metric_templates: Mapping[tuple[str, str], Mapping[str, Any]]


def canary(doc: Fields, inputs: Inputs) -> list[dict[str, Any]]:
    """The Sluice Rollout, and its AnalysisTemplate when the Canary has metrics."""
    doc.ignore("apiVersion", "kind", "status")
    meta_fields = doc.sub("metadata")
    name = str(meta_fields.data.get("name", ""))
    namespace = str(meta_fields.data.get("namespace") or "default")
    meta = metadata(meta_fields)
    spec = doc.sub("spec")

    target = spec.sub("targetRef")
    target.ignore("apiVersion")
    target_kind = target.get("kind", "Deployment")
    target_name = str(target.get("name"))
    out: dict[str, Any] = {}
    deployment = inputs.deployments.get((namespace, target_name))
    if target_kind != "Deployment":
        spec.note(
            "targetRef",
            "todo",
            f"Sluice adopts a Deployment, not a {target_kind}: put the pod template in the Rollout",
        )
    # Flagger keeps the target Deployment as the source of the pod template and scales it to 0
    # once the primary serves: that is a workloadRef with scaleDown onSuccess
    out["workloadRef"] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": target_name,
        "scaleDown": "onSuccess",
    }
    spec.note(
        "targetRef",
        "changed",
        f"the Rollout adopts Deployment {target_name!r} (workloadRef, scaleDown onSuccess), as "
        "Flagger did: keep it in Git as the source of the pod template",
    )
    replicas = ((deployment or {}).get("spec") or {}).get("replicas")
    if replicas is not None:
        out["replicas"] = replicas
    else:
        spec.note(
            "targetRef",
            "todo",
            f"set spec.replicas: Deployment {target_name!r} was not among the inputs to take it from",
        )
    if "progressDeadlineSeconds" in spec:
        out["progressDeadlineSeconds"] = spec.get("progressDeadlineSeconds")

    service = spec.sub("service")
    apex = str(service.get("name") or target_name)
    primary, canary_svc = f"{apex}-primary", f"{apex}-canary"
    service.ignore("port")
    service.note(
        "name" if "name" in service else "port",
        "todo",
        f"Flagger generated the Services {apex!r}, {primary!r} and {canary_svc!r}; Sluice uses "
        f"existing ones: keep {primary!r} (stable) and {canary_svc!r} (canary) in Git, each "
        "selecting the app's pods",
    )
    service.rest(
        "Flagger generated the routing objects from this; in Sluice they are yours (in Git), "
        "Sluice only sets their weights"
    )

    provider = str(spec.get("provider") or "kubernetes")
    routing = _routing(spec, provider, apex)

    analysis_key = "analysis" if "analysis" in spec else "canaryAnalysis"
    analysis = spec.sub(analysis_key)
    template_name = f"{name}-metrics"
    interval = str(analysis.get("interval") or DEFAULT_INTERVAL)
    iterations = analysis.get("iterations")
    stepped = bool(analysis.data.get("stepWeight") or analysis.data.get("stepWeights"))
    headers = _ab_headers(analysis) if iterations and not stepped else None
    blue_green = bool(iterations) and not stepped and headers is None
    metric_ctx = _MetricContext(namespace, target_name, apex, spec, name, interval)
    metrics = _metrics(analysis, inputs, metric_ctx, count=int(iterations) if blue_green else None)
    templates: list[dict[str, Any]] = []
    ref = None
    if metrics:
        templates.append(
            document(
                "AnalysisTemplate",
                {"name": template_name, "namespace": namespace},
                {"metrics": metrics},
            )
        )
        ref = {"templates": [{"templateName": template_name}]}

    if blue_green:
        analysis.ignore("iterations")
        bg: dict[str, Any] = {
            "activeService": primary,
            "previewService": canary_svc,
            "autoPromotionEnabled": True,
        }
        if ref is not None:
            bg["prePromotionAnalysis"] = ref
        if routing:
            analysis.note(
                "iterations",
                "changed",
                "blue-green switches the Services' selectors; the routing object is not needed",
            )
        out["strategy"] = {"blueGreen": bg}
    else:
        c: dict[str, Any] = {"stableService": primary, "canaryService": canary_svc}
        if routing:
            c["trafficRouting"] = routing
        steps: list[dict[str, Any]] = []
        if headers is not None:
            # Flagger's A/B testing: matching requests go to the canary for ``iterations``
            # intervals, then promotion
            seconds = int(iterations) * _seconds(interval)
            steps += [{"setHeaderRoute": headers}, {"pause": {"duration": f"{seconds}s"}}]
            analysis.ignore("iterations")
        if analysis.data.get("mirror"):
            # Flagger mirrors for one interval at weight 0 before shifting any traffic
            percent = int(analysis.get("mirrorWeight") or 100)
            steps += [
                {"setMirrorRoute": {"percentage": percent}},
                {"pause": {"duration": interval}},
                {"setMirrorRoute": {"percentage": 0}},
            ]
            analysis.ignore("mirror")
        for weight in _weights(analysis):
            steps += [{"setWeight": weight}, {"pause": {"duration": interval}}]
        c["steps"] = steps
        if ref is not None:
            c["analysis"] = ref
        out["strategy"] = {"canary": c}

    analysis.drop("mirror", "mirroring needs step weights (Flagger mirrors before shifting)")
    analysis.drop("mirrorWeight", "mirroring needs step weights (Flagger mirrors before shifting)")
    analysis.drop("stepWeightPromotion", "Sluice promotes in one move after the last step")
    analysis.drop("primaryReadyThreshold", "Sluice waits for every stable pod to be ready")
    analysis.drop("canaryReadyThreshold", "Sluice waits for every canary pod to be ready")
    analysis.drop("sessionAffinity", "session affinity by cookie is not supported yet")
    analysis.drop("alerts", "Sluice posts Kubernetes Events and Prometheus metrics instead")
    for i, hook in enumerate(analysis.items("webhooks")):
        hook.ignore(*hook.data)
        kind = hook.data.get("type", "rollout")
        analysis.note(
            f"webhooks[{i}]",
            "dropped",
            f"Sluice calls no webhooks ({kind} hook {hook.data.get('name')!r}); "
            + (
                "gate with a pause step and `sluice promote` instead"
                if str(kind).startswith("confirm")
                else "run load tests or checks outside the rollout"
            ),
        )
    if "threshold" in analysis:
        analysis.ignore("threshold")
    spec.drop("autoscalerRef", "Sluice does not scale with an HPA; set replicas")
    spec.drop("skipAnalysis", "skip a rollout's steps with `sluice promote --full`")
    spec.drop("revertOnDeletion", "Sluice leaves the slots running when the Rollout is deleted")
    spec.drop("suspend", "pause with `sluice pause NAME` (the sluice.dev/request annotation)")
    spec.drop("metricsServer", "set provider.prometheus.address in the AnalysisTemplate")
    rollout = document("Rollout", meta, out)
    return [rollout, *templates]


def _routing(spec: Fields, provider: str, apex: str) -> dict[str, Any] | None:
    kind = provider.split(":", 1)[0]
    ingress = spec.sub("ingressRef") if "ingressRef" in spec else None
    route = spec.sub("routeRef") if "routeRef" in spec else None
    if ingress is not None:
        ingress.ignore("apiVersion", "kind")
    if route is not None:
        route.ignore("apiVersion", "kind")
    spec.drop("upstreamRef", "Sluice does not route through Gloo")
    spec.ignore("provider")
    if kind == "istio":
        spec.note(
            "provider",
            "todo",
            f"Flagger generated VirtualService {apex!r}; keep it in Git routing to the primary "
            "and canary Services in one HTTP route (Sluice sets the weights)",
        )
        return {"istio": {"virtualService": {"name": apex}}}
    if kind == "gatewayapi":
        spec.note(
            "provider",
            "todo",
            f"Flagger generated HTTPRoute {apex!r}; keep it in Git with backendRefs to the "
            "primary and canary Services (Sluice sets the weights)",
        )
        return {"gatewayAPI": {"httpRoute": {"name": apex}}}
    if kind == "nginx":
        if ingress is None:
            spec.note("provider", "todo", "NGINX needs ingressRef naming the stable Ingress")
            return None
        name = ingress.get("name")
        spec.note(
            "ingressRef",
            "todo",
            f"point Ingress {name!r} at the primary Service; Sluice creates the canary Ingress",
        )
        return {"nginx": {"stableIngress": name}}
    if kind in ("smi", "linkerd", "osm"):
        spec.note(
            "provider",
            "todo",
            f"Flagger generated TrafficSplit {apex!r}; keep it in Git with backends primary and "
            "canary (Sluice sets the weights)",
        )
        return {"smi": {"trafficSplitName": apex}}
    if kind != "kubernetes":
        spec.note(
            "provider",
            "dropped",
            f"Sluice does not route through {provider!r}; traffic follows the replica ratio",
        )
    if ingress is not None:
        ingress.drop("name", f"ingressRef is used with provider nginx only (got {provider!r})")
    if route is not None:
        route.drop("name", "Sluice does not route through this provider")
    return None


def _seconds(duration: str) -> int:
    total, number = 0, ""
    for ch in duration:
        if ch.isdigit():
            number += ch
        elif ch in "hms" and number:
            total += int(number) * {"h": 3600, "m": 60, "s": 1}[ch]
            number = ""
    return total or 60


def _ab_headers(analysis: Fields) -> dict[str, Any] | None:
    """Flagger's A/B ``match`` (Istio HTTPMatchRequests) as a Sluice header route: the headers
    of the first match (Sluice's header route is one set of headers, all required)."""
    matches = analysis.data.get("match") or []
    if not matches:
        return None
    out = []
    for i, m in enumerate(analysis.items("match")):
        headers = m.sub("headers")
        if i > 0:
            m.ignore(*m.data)
            headers.ignore(*headers.data)
            analysis.note(
                f"match[{i}]", "dropped", "Sluice's header route takes one set of headers"
            )
            continue
        for name, value in headers.data.items():
            headers.ignore(name)
            kind = next((k for k in ("exact", "prefix", "regex") if k in (value or {})), None)
            if kind is None:
                headers.note(name, "dropped", "no exact, prefix or regex")
                continue
            out.append({"headerName": name, "headerValue": {kind: value[kind]}})
        m.rest("Sluice's header route matches headers only")
    return {"match": out} if out else None


def _weights(analysis: Fields) -> list[int]:
    """The canary weights Flagger steps through (its scheduler's maxWeight/nextStepWeight)."""
    explicit = [int(w) for w in analysis.get("stepWeights") or []]
    if explicit:
        analysis.ignore("maxWeight", "stepWeight")
        return [min(w, 100) for w in explicit]
    step = int(analysis.get("stepWeight") or 0)
    top = int(analysis.get("maxWeight") or 100)
    if step <= 0:
        return []
    weights, w = [], 0
    while w < top:
        w = min(w + step, top)
        weights.append(w)
    return weights


@dataclass(frozen=True)
class _MetricContext:
    namespace: str
    target: str
    service: str
    spec: Fields
    canary: str
    interval: str


_VAR = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}\}")


def _metrics(
    analysis: Fields, inputs: Inputs, ctx: _MetricContext, count: int | None
) -> list[dict[str, Any]]:
    threshold = int(analysis.data.get("threshold") or 1)
    out = []
    for m in analysis.items("metrics"):
        name = str(m.get("name"))
        interval = str(m.get("interval") or "1m")
        bounds: dict[str, Any] = {}
        if "thresholdRange" in m:
            tr = m.sub("thresholdRange")
            for key in ("min", "max"):
                if tr.get(key) is not None:
                    bounds[key] = float(tr.get(key))
        elif m.get("threshold") is not None:
            bounds["min"] = float(m.get("threshold"))  # Flagger's deprecated lower bound
        query, prometheus, variables, problem = _query_of(m, inputs, ctx)
        if problem is not None or query is None:
            m.note(None, "dropped", f"metric {name!r} left out: {problem}")
            m.ignore(*m.data)
            continue
        if not bounds:
            m.note(None, "dropped", f"metric {name!r} left out: it has no thresholdRange")
            continue
        prometheus["query"] = _render(query, ctx, interval, variables, m)
        bounds["failureLimit"] = max(threshold - 1, 0)
        metric: dict[str, Any] = {
            "name": _dns_label(name),
            "kind": "value",
            "interval": ctx.interval,
            "provider": {"prometheus": prometheus},
            "threshold": bounds,
        }
        if count is not None:
            metric["count"] = count
        out.append(metric)
    if out and threshold > 1:
        analysis.note(
            "threshold",
            "changed",
            f"Flagger rolls back after {threshold} failed checks of all metrics together; "
            f"Sluice fails a metric after {threshold} failed measurements of that metric "
            f"(failureLimit {threshold - 1})",
        )
    return out


def _dns_label(name: str) -> str:
    return re.sub(r"[^a-z0-9-]", "-", name.lower()).strip("-")[:63] or "metric"


def _query_of(
    m: Fields, inputs: Inputs, ctx: _MetricContext
) -> tuple[str | None, dict[str, Any], dict[str, str], str | None]:
    """(query, other provider fields, variables, why not): from the inline query or the
    MetricTemplate."""
    variables = {str(k): str(v) for k, v in (m.get("templateVariables") or {}).items()}
    if m.get("query"):
        return str(m.get("query")), {}, variables, None
    if "templateRef" not in m:
        return (
            None,
            {},
            variables,
            f"{m.data.get('name')!r} is a Flagger built-in metric, computed from queries of the "
            "mesh; write it as a Sluice AnalysisTemplate (a compare of kind counts judges error "
            "rates against the stable pods)",
        )
    ref = m.sub("templateRef")
    ref_name = str(ref.get("name"))
    ref_ns = str(ref.get("namespace") or ctx.namespace)
    template = inputs.metric_templates.get((ref_ns, ref_name))
    if template is None:
        return None, {}, variables, f"MetricTemplate {ref_ns}/{ref_name} was not among the inputs"
    tspec = template.get("spec") or {}
    provider = tspec.get("provider") or {}
    kind = provider.get("type") or "prometheus"
    if kind != "prometheus":
        why = f"Sluice measures with Prometheus only (MetricTemplate {ref_name!r} uses {kind})"
        return None, {}, variables, why
    prometheus: dict[str, Any] = {}
    if provider.get("address"):
        prometheus["address"] = provider["address"]
    return str(tspec.get("query") or ""), prometheus, variables, None


def _render(
    query: str, ctx: _MetricContext, interval: str, variables: dict[str, str], m: Fields
) -> str:
    """Flagger's ``{{ namespace }}``, ``{{ target }}``... filled in with the values Flagger would
    use, ``{{ interval }}`` with the metric's interval."""
    used_target = False

    def value(match: re.Match[str]) -> str:
        nonlocal used_target
        key = match.group(1)
        if key == "target":
            used_target = True
            return ctx.target
        known = {
            "namespace": ctx.namespace,
            "name": ctx.canary,
            "service": ctx.service,
            "interval": interval,
            "ingress": str((ctx.spec.data.get("ingressRef") or {}).get("name", "")),
            "route": str((ctx.spec.data.get("routeRef") or {}).get("name", "")),
        }
        if key in known:
            return known[key]
        if key.startswith("variables.") and key[len("variables.") :] in variables:
            return variables[key[len("variables.") :]]
        m.note(None, "todo", f"the query's {match.group(0)} has no value; fill it in")
        return match.group(0)

    rendered = _VAR.sub(value, query)
    if used_target:
        m.note(
            None,
            "todo",
            f"the query selected Flagger's canary Deployment {ctx.target!r} by name ({{{{ target }}}}); "
            f"Sluice runs the canary in Deployment {ctx.canary}-a or {ctx.canary}-b: select the "
            "canary pods by label sluice.dev/revision={{args.canary-revision}} instead",
        )
    return rendered


def metric_template(doc: Fields, users: list[str]) -> None:
    """A MetricTemplate is not a Sluice document by itself (Sluice keeps a query with its bounds,
    which Flagger keeps in the Canary): it goes into the AnalysisTemplate of each Canary that
    uses it (``users``). Here only what cannot go along is reported."""
    doc.ignore("apiVersion", "kind", "status", "metadata")
    if users:
        doc.note(None, "changed", "merged into " + ", ".join(users))
    else:
        doc.note(
            None,
            "dropped",
            "no Canary among the inputs uses it (Sluice keeps queries "
            "with their bounds, in the AnalysisTemplate)",
        )
    spec = doc.sub("spec")
    spec.ignore("query")
    provider = spec.sub("provider")
    provider.ignore("type", "address")
    if "secretRef" in provider:
        provider.note(
            "secretRef",
            "todo",
            "set provider.prometheus.auth (secretRef with bearerTokenKey, or usernameKey and "
            "passwordKey) in the converted AnalysisTemplate",
        )
    provider.drop("headers", "Sluice sends no custom headers to Prometheus")
    provider.drop("insecureSkipVerify", "Sluice always verifies TLS")
    provider.drop("region", "Sluice measures with Prometheus only")
