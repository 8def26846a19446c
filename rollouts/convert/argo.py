"""Argo Rollouts (``argoproj.io/v1alpha1``) Rollout, AnalysisTemplate and ClusterAnalysisTemplate.

Field names follow Argo Rollouts' API types (pkg/apis/rollouts/v1alpha1/types.go and
analysis_types.go). Sluice's Rollout was modelled on Argo's, so most of a canary or blue-green
strategy carries over name for name; what has no Sluice equivalent is reported with the reason.
"""

from __future__ import annotations

import re
from typing import Any

from rollouts.convert.common import document, metadata
from rollouts.convert.fields import Fields

GROUP = "argoproj.io"
NO_EXPERIMENTS = "Sluice has no experiments; judge the canary with an analysis step instead"
STATUS = "status is written by the controller"


# ------------------------------------------------------------------------------------ Rollout


def rollout(doc: Fields) -> dict[str, Any]:
    doc.ignore("apiVersion", "kind", "status")
    meta_fields = doc.sub("metadata")
    name = meta_fields.data.get("name", "")
    meta = metadata(meta_fields)
    spec = doc.sub("spec")
    out: dict[str, Any] = {}
    if "replicas" in spec:
        out["replicas"] = spec.get("replicas")
    selector = spec.get("selector")
    if selector is not None:
        out["selector"] = selector
    if "template" in spec:
        out["template"] = spec.get("template")
    if "workloadRef" in spec:
        ref = spec.sub("workloadRef")
        ref.ignore("apiVersion")
        kind = ref.get("kind", "Deployment")
        scale_down = {"never": "never", "onsuccess": "onSuccess", "progressively": "progressively"}
        wanted = str(ref.get("scaleDown") or "never")
        converted: dict[str, Any] = {"apiVersion": "apps/v1", "kind": "Deployment"}
        converted["name"] = ref.get("name")
        if wanted.lower() in scale_down:
            converted["scaleDown"] = scale_down[wanted.lower()]
        else:
            ref.note("scaleDown", "dropped", f"unknown scaleDown {wanted!r}: never (the default)")
        if kind != "Deployment":
            ref.note("kind", "todo", f"Sluice adopts Deployments only, not a {kind}")
        out["workloadRef"] = converted
    for key in ("revisionHistoryLimit", "progressDeadlineSeconds"):
        if key in spec:
            out[key] = spec.get(key)
    if spec.get("progressDeadlineAbort") is False:
        spec.note("progressDeadlineAbort", "changed", "Sluice always aborts at the deadline")
    spec.drop("minReadySeconds", "Sluice counts a pod once it is ready; set it on probes")
    spec.drop("rollbackWindow", "Sluice rolls back through a new revision in Git")
    spec.drop("paused", "pause with `sluice pause NAME` (the sluice.dev/request annotation)")
    spec.drop("restartAt", "Sluice has no restarts; change the template to roll out again")
    spec.drop("analysis", "Sluice keeps every run's evidence in the Rollout's status instead")
    strategy = spec.sub("strategy")
    out["strategy"] = {}
    if "canary" in strategy:
        out["strategy"]["canary"] = _canary(strategy.sub("canary"), str(name))
    if "blueGreen" in strategy:
        out["strategy"]["blueGreen"] = _blue_green(strategy.sub("blueGreen"), str(name))
    return document("Rollout", meta, out)


def _canary(c: Fields, name: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, fallback in (("stableService", f"{name}-stable"), ("canaryService", f"{name}-canary")):
        value = c.get(key)
        if not value:
            value = fallback
            c.note(
                key,
                "todo",
                f"Sluice routes by Services: create Service {fallback!r} selecting the pods "
                "(Sluice adds its slot key to the selector)",
            )
        out[key] = value
    routing = _traffic_routing(c.sub("trafficRouting")) if "trafficRouting" in c else None
    if routing:
        out["trafficRouting"] = routing
    steps = [s for s in (_step(step) for step in c.items("steps")) if s is not None]
    if steps:
        out["steps"] = steps
    if "analysis" in c:
        bg = c.sub("analysis")
        ref = _analysis_ref(bg)
        starting = bg.get("startingStep")
        if starting is not None:
            ref["startingStep"] = starting
        out["analysis"] = ref
    for key in ("scaleDownDelaySeconds", "abortScaleDownDelaySeconds", "maxSurge"):
        if key in c:
            out[key] = c.get(key)
    c.drop("maxUnavailable", "Sluice never takes stable pods down during a canary")
    c.drop("scaleDownDelayRevisionLimit", "Sluice runs two slots: at most one old revision")
    c.drop("antiAffinity", "set affinity in the pod template")
    c.drop("canaryMetadata", "Sluice labels each slot's pods with sluice.dev/slot and revision")
    c.drop("stableMetadata", "Sluice labels each slot's pods with sluice.dev/slot and revision")
    c.drop("dynamicStableScale", "Sluice keeps the stable slot at full size until promotion")
    c.drop("pingPong", "Sluice's two slots already alternate; name stable and canary Services")
    c.drop("minPodsPerReplicaSet", "the canary runs at least one pod while it gets traffic")
    c.drop("replicaProgressThreshold", "Sluice waits for every pod of a step to be ready")
    return out


def _step(step: Fields) -> dict[str, Any] | None:
    if "setWeight" in step:
        return {"setWeight": step.get("setWeight")}
    if "pause" in step:
        pause = step.sub("pause")
        return {"pause": {"duration": pause.get("duration")} if "duration" in pause else {}}
    if "analysis" in step:
        return {"analysis": _analysis_ref(step.sub("analysis"))}
    if "setHeaderRoute" in step:
        return {"setHeaderRoute": _header_route(step.sub("setHeaderRoute"))}
    if "setMirrorRoute" in step:
        return {"setMirrorRoute": _mirror_route(step.sub("setMirrorRoute"))}
    step.drop("experiment", NO_EXPERIMENTS)
    step.drop("setCanaryScale", "Sluice sizes the canary from the weight; step left out")
    step.drop("plugin", "Sluice has no step plugins; step left out")
    return None


_ROUTE_NAME = "Sluice names its own routes sluice-<rollout>-header and -mirror"


def _header_route(r: Fields) -> dict[str, Any]:
    if "name" in r:
        r.note("name", "changed", _ROUTE_NAME)
    match = []
    for m in r.items("match"):
        value = m.sub("headerValue")
        kind = next((k for k in ("exact", "prefix", "regex") if k in value), None)
        if kind is None:
            m.note("headerValue", "dropped", "no exact, prefix or regex: header left out")
            m.ignore("headerName")
            continue
        value.get(kind)
        match.append({"headerName": m.get("headerName"), "headerValue": {kind: value.data[kind]}})
    return {"match": match} if match else {}


def _mirror_route(r: Fields) -> dict[str, Any]:
    if "name" in r:
        r.note("name", "changed", _ROUTE_NAME)
    if "match" not in r:
        r.ignore("percentage")
        return {"percentage": 0}  # Argo: a mirror step without match removes the route
    r.note(
        "match",
        "changed",
        "Sluice mirrors a percentage of all the managed route's traffic, whatever it matches",
    )
    return {"percentage": int(r.get("percentage") or 100)}


def _analysis_ref(ref: Fields) -> dict[str, Any]:
    out: dict[str, Any] = {"templates": []}
    for t in ref.items("templates"):
        entry: dict[str, Any] = {"templateName": t.get("templateName")}
        if t.get("clusterScope"):
            entry["clusterScope"] = True
        out["templates"].append(entry)
    args = []
    for a in ref.items("args"):
        arg_name = a.get("name")
        if "valueFrom" in a:
            _value_from(a, a.sub("valueFrom"))
            continue
        args.append({"name": arg_name, "value": str(a.get("value", ""))})
    if args:
        out["args"] = args
    ref.drop(
        "dryRun", "set dryRun: true on the metric in the Sluice template (converted templates do)"
    )
    ref.drop("measurementRetention", "Sluice keeps the last measurements and a running summary")
    ref.drop("analysisRunMetadata", "Sluice labels its AnalysisRuns with the rollout and revision")
    return out


_HASHES = {"Latest": "canary-revision", "Stable": "stable-revision"}


def _value_from(arg: Fields, v: Fields) -> None:
    """Notes go on the arg: it is left out of the Rollout as a whole."""
    if "podTemplateHashValue" in v:
        which = v.get("podTemplateHashValue")
        builtin = _HASHES.get(str(which))
        arg.note(
            None,
            "changed" if builtin else "dropped",
            f"Sluice passes the revision itself, as the built-in arg {builtin}: templates among "
            f"the inputs are rewritten to use {{{{args.{builtin}}}}}, others must be by hand"
            if builtin
            else f"unknown podTemplateHashValue {which!r}",
        )
    if "fieldRef" in v:
        v.sub("fieldRef").ignore("fieldPath")
        arg.note(
            None,
            "todo",
            "Sluice args are values: write the field's value, or use a built-in arg "
            "(rollout, namespace, canary-service, stable-service...)",
        )


def _traffic_routing(tr: Fields) -> dict[str, Any] | None:
    out: dict[str, Any] | None = None
    if "istio" in tr:
        out = _istio(tr.sub("istio"))
    if "nginx" in tr:
        nginx = tr.sub("nginx")
        stable = nginx.get("stableIngress")
        if stable:
            out = {"nginx": {"stableIngress": stable}}
        nginx.drop(
            "stableIngresses", "Sluice manages one stable Ingress (the first is not guessed)"
        )
        nginx.drop("annotationPrefix", "Sluice writes nginx.ingress.kubernetes.io annotations")
        nginx.drop("additionalIngressAnnotations", "Sluice writes only the canary annotations")
        nginx.drop("canaryIngressAnnotations", "Sluice writes only the canary annotations")
    if "smi" in tr:
        smi = tr.sub("smi")
        split = smi.get("trafficSplitName")
        if split:
            out = {"smi": {"trafficSplitName": split}}
        else:
            tr.note("smi", "todo", "name the TrafficSplit Sluice updates (trafficSplitName)")
        smi.drop("rootService", "the TrafficSplit's own spec.service is used")
    if "plugins" in tr:
        plugins = tr.sub("plugins")
        for key in list(plugins.data):
            if key.endswith("gatewayAPI"):
                gw = plugins.sub(key)
                route = gw.get("httpRoute")
                if route:
                    out = {"gatewayAPI": {"httpRoute": {"name": route}}}
                gw.drop("namespace", "the HTTPRoute must be in the Rollout's namespace")
                gw.drop("httpRoutes", "Sluice updates one HTTPRoute (httpRoute)")
                gw.drop("useHeaderRoutes", "Sluice adds header routes to the HTTPRoute itself")
                gw.drop("configMap", "Sluice needs no ConfigMap for Gateway API")
                gw.rest("Gateway API plugin field with no Sluice equivalent")
            else:
                plugins.drop(key, f"traffic router plugin {key!r} has no Sluice equivalent")
    for router in ("alb", "ambassador", "appMesh", "traefik", "apisix"):
        tr.drop(
            router,
            f"Sluice does not route through {router} (Istio, Gateway API, SMI, NGINX); "
            "without a router traffic follows the replica ratio",
        )
    if "managedRoutes" in tr:
        for route in tr.items("managedRoutes"):
            route.ignore("name")
        tr.note("managedRoutes", "changed", _ROUTE_NAME + ", and marks them; no list is needed")
    tr.drop("maxTrafficWeight", "Sluice weights are percentages (0-100)")
    return out


def _istio(istio: Fields) -> dict[str, Any] | None:
    services = list(istio.items("virtualServices"))
    if "virtualService" in istio:
        services.insert(0, istio.sub("virtualService"))
    if not services:
        return None
    out: dict[str, Any] | None = None
    for i, vs in enumerate(services):
        if i == 0:
            out = {"istio": {"virtualService": {"name": vs.get("name")}}}
            routes = vs.get("routes")
            if routes:
                out["istio"]["virtualService"]["routes"] = list(routes)
            vs.drop("tlsRoutes", "Sluice sets weights on HTTP routes only")
            vs.drop("tcpRoutes", "Sluice sets weights on HTTP routes only")
        else:
            vs.ignore("name", "routes", "tlsRoutes", "tcpRoutes")
            istio.note(
                f"virtualServices[{i}]", "dropped", "Sluice updates one VirtualService (the first)"
            )
    istio.drop(
        "destinationRule",
        "Sluice splits traffic between the stable and canary Services, not subsets: route the "
        "VirtualService to the two Services",
    )
    return out


def _blue_green(bg: Fields, name: str) -> dict[str, Any]:
    out: dict[str, Any] = {"activeService": bg.get("activeService")}
    preview = bg.get("previewService")
    if not preview:
        preview = f"{name}-preview"
        bg.note(
            "previewService",
            "todo",
            f"Sluice needs a preview Service: create Service {preview!r} selecting the pods",
        )
    out["previewService"] = preview
    for key in (
        "previewReplicaCount",
        "autoPromotionEnabled",
        "autoPromotionSeconds",
        "scaleDownDelaySeconds",
    ):
        if key in bg:
            out[key] = bg.get(key)
    for key in ("prePromotionAnalysis", "postPromotionAnalysis"):
        if key in bg:
            out[key] = _analysis_ref(bg.sub(key))
    bg.drop("maxUnavailable", "Sluice brings the preview up beside the active pods")
    bg.drop("scaleDownDelayRevisionLimit", "Sluice runs two slots: at most one old revision")
    bg.drop("antiAffinity", "set affinity in the pod template")
    bg.drop("previewMetadata", "Sluice labels each slot's pods with sluice.dev/slot and revision")
    bg.drop("activeMetadata", "Sluice labels each slot's pods with sluice.dev/slot and revision")
    bg.drop("abortScaleDownDelaySeconds", "a blue-green abort scales the preview down at once")
    return out


# ---------------------------------------------------------------------------- AnalysisTemplate

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_RESULT = r"result(?:\[0\])?"
_COMPARISON = re.compile(
    rf"^\s*(?:({_RESULT})\s*(<=|>=|<|>)\s*({_NUMBER})|({_NUMBER})\s*(<=|>=|<|>)\s*({_RESULT}))\s*$"
)
_FLIP = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}


def _bounds(expr: str) -> list[tuple[str, float]] | None:
    """``result[0] >= 0.95 && result[0] < 2`` as [(">=", 0.95), ("<", 2)]; None when the
    condition is anything else (a function, an ``||``, a comparison of two results)."""
    out = []
    for part in expr.split("&&"):
        m = _COMPARISON.match(part)
        if m is None:
            return None
        if m.group(1):
            out.append((m.group(2), float(m.group(3))))
        else:
            out.append((_FLIP[m.group(5)], float(m.group(4))))
    return out


def _threshold(metric: Fields) -> tuple[dict[str, Any], list[str]] | None:
    """min/max from the success and failure conditions, and notes on strictness; None when a
    condition is not a plain bound on the result."""
    lo: float | None = None
    hi: float | None = None
    strict: list[str] = []
    for key, failing in (("successCondition", False), ("failureCondition", True)):
        expr = metric.data.get(key)
        if not expr:
            continue
        bounds = _bounds(str(expr))
        if bounds is None:
            return None
        for op, value in bounds:
            # success "result >= x" and failure "result < x" both mean min x
            keeps_above = (op in (">", ">=")) != failing
            if op in ("<", ">"):
                strict.append(f"{key} {expr!r}")
            if keeps_above:
                lo = value if lo is None else max(lo, value)
            else:
                hi = value if hi is None else min(hi, value)
    if lo is None and hi is None:
        return None
    out: dict[str, Any] = {}
    if lo is not None:
        out["min"] = lo
    if hi is not None:
        out["max"] = hi
    return out, strict


def hash_args(rollout_doc: Any) -> dict[str, dict[str, str]]:
    """Template name → {arg: Sluice built-in} for the args an Argo Rollout fills with
    ``valueFrom.podTemplateHashValue``: Sluice passes the revision itself, as a built-in arg."""
    out: dict[str, dict[str, str]] = {}
    canary = ((rollout_doc.get("spec") or {}).get("strategy") or {}).get("canary") or {}
    blue_green = ((rollout_doc.get("spec") or {}).get("strategy") or {}).get("blueGreen") or {}
    refs = [canary.get("analysis")] + [(s or {}).get("analysis") for s in canary.get("steps") or []]
    refs += [blue_green.get("prePromotionAnalysis"), blue_green.get("postPromotionAnalysis")]
    for ref in refs:
        if not isinstance(ref, dict):
            continue
        for arg in ref.get("args") or []:
            which = ((arg or {}).get("valueFrom") or {}).get("podTemplateHashValue")
            builtin = _HASHES.get(str(which))
            if builtin is None:
                continue
            for t in ref.get("templates") or []:
                out.setdefault(str((t or {}).get("templateName")), {})[str(arg["name"])] = builtin
    return out


def analysis_template(doc: Fields, revision_args: dict[str, str]) -> dict[str, Any]:
    """``revision_args``: args a Rollout among the inputs fills with the pod template hash, and
    the built-in arg that carries the revision in Sluice (see :func:`hash_args`)."""
    kind = str(doc.get("kind"))
    doc.ignore("apiVersion", "status")
    meta = metadata(doc.sub("metadata"), cluster_scoped=kind == "ClusterAnalysisTemplate")
    spec = doc.sub("spec")
    queries = " ".join(
        str(((m or {}).get("provider") or {}).get("prometheus", {}).get("query", ""))
        for m in spec.data.get("metrics") or []
        if isinstance(m, dict)
    )
    args: list[dict[str, Any]] = []
    for a in spec.items("args"):
        arg_name = str(a.get("name"))
        used = re.search(r"\{\{\s*args\." + re.escape(arg_name) + r"\s*\}\}", queries)
        if arg_name in revision_args:
            a.ignore(*a.data)
            builtin = revision_args[arg_name]
            spec.note(
                f"args[{len(args)}]",
                "changed",
                f"the Rollout passes the pod template hash as {arg_name!r}: the queries use "
                f"Sluice's built-in arg {builtin} instead (the value of the pods' "
                "sluice.dev/revision label; relabel it into your metrics as you did "
                "rollouts-pod-template-hash)",
            )
            continue
        arg: dict[str, Any] = {"name": arg_name}
        if "value" in a:
            arg["value"] = str(a.get("value"))
        if "valueFrom" in a:
            v = a.sub("valueFrom")
            if not used:
                v.ignore(*v.data)
                a.note(
                    None,
                    "dropped",
                    "no query uses this arg, and Sluice args take values only: declaration left out",
                )
                continue
            v.drop(
                "secretKeyRef",
                "Sluice args are never secret (they are escaped into queries); put credentials "
                "in provider.prometheus.auth",
            )
            v.drop("fieldRef", "pass the value from the Rollout's analysis args")
        args.append(arg)
    dry = [str(d.get("metricName")) for d in spec.items("dryRun")]
    metrics = []
    for m in spec.items("metrics"):
        metric = _metric(m, dry)
        if metric is not None:
            query = metric["provider"]["prometheus"]["query"]
            for arg_name, builtin in revision_args.items():
                query = query.replace("{{args." + arg_name + "}}", "{{args." + builtin + "}}")
            metric["provider"]["prometheus"]["query"] = query
            metrics.append(metric)
    spec.drop("measurementRetention", "Sluice keeps the last measurements and a running summary")
    spec.drop("templates", "Sluice templates do not nest: list each template in the Rollout")
    out: dict[str, Any] = {"args": args} if args else {}
    out["metrics"] = metrics
    return document(kind, meta, out)


def _dry_run(name: str, patterns: list[str]) -> bool:
    return any(re.fullmatch(p, name) for p in patterns)


def _metric(m: Fields, dry: list[str]) -> dict[str, Any] | None:
    name = str(m.get("name"))
    provider = m.sub("provider")
    if "prometheus" not in provider:
        kinds = ", ".join(provider.data) or "none"
        m.note(
            None,
            "dropped",
            f"metric {name!r} left out: Sluice measures with Prometheus only (provider {kinds}); "
            "write it as a PromQL query",
        )
        m.ignore(*m.data)
        provider.ignore(*provider.data)
        return None
    threshold = _threshold(m)
    if threshold is None:
        conditions = " / ".join(
            repr(m.data[k]) for k in ("successCondition", "failureCondition") if k in m
        )
        m.note(
            None,
            "dropped",
            f"metric {name!r} left out: Sluice judges a threshold as min/max bounds, and "
            f"{conditions or 'no condition'} is not a plain comparison of result with a number",
        )
        m.ignore(*m.data)
        provider.ignore(*provider.data)
        return None
    bounds, strict = threshold
    m.ignore("successCondition", "failureCondition")
    if strict:
        m.note(
            "successCondition" if "successCondition" in m else "failureCondition",
            "changed",
            "a strict comparison became an inclusive bound (" + "; ".join(strict) + ")",
        )
    for key, target in (
        ("failureLimit", "failureLimit"),
        ("inconclusiveLimit", "inconclusiveLimit"),
        ("consecutiveErrorLimit", "consecutiveErrorLimit"),
    ):
        if key in m:
            value = m.get(key)
            if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
                bounds[target] = int(value)
            else:
                m.note(
                    key, "dropped", f"{value!r} is not a number (Sluice limits are not templated)"
                )
    m.drop("consecutiveSuccessLimit", "a Sluice threshold passes when its count completes")
    out: dict[str, Any] = {"name": name, "kind": "value"}
    if "interval" in m:
        out["interval"] = m.get("interval")
    if "initialDelay" in m:
        out["initialDelay"] = m.get("initialDelay")
    count = m.get("count")
    if count is not None:
        if isinstance(count, int) or (isinstance(count, str) and count.isdigit()):
            out["count"] = int(count)
        else:
            m.note("count", "dropped", f"{count!r} is not a number; the metric runs until stopped")
    elif "interval" not in out:
        out["count"] = 1  # Argo: no interval and no count measures once
    if _dry_run(name, dry):
        out["dryRun"] = True
    out["provider"] = {"prometheus": _prometheus(provider.sub("prometheus"), name)}
    out["threshold"] = bounds
    return out


def _prometheus(p: Fields, name: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if p.get("address"):
        out["address"] = p.get("address")
    out["query"] = _query(str(p.get("query", "")))
    if "timeout" in p:
        out["timeout"] = f"{int(p.get('timeout'))}s"
    p.drop(
        "authentication",
        "Sluice reads credentials from a Secret: set provider.prometheus.auth.secretRef",
    )
    p.drop("insecure", "Sluice always verifies TLS")
    p.drop("headers", "Sluice sends no custom headers; use auth for credentials")
    p.drop("rangeQuery", "Sluice runs instant queries over the window ({{window}})")
    return out


_PLACEHOLDER = r"\{\{\s*(args\.[A-Za-z0-9_-]+)\s*\}\}"


def _query(q: str) -> str:
    """Argo pastes arguments into the query as text, so templates quote them:
    ``service="{{args.name}}"``. Sluice renders an argument as a quoted, escaped PromQL string,
    so the quotes go: ``service={{args.name}}``. Spaces inside the braces go too. A placeholder
    inside a longer string (a regex) stays, and the output check reports it."""
    q = re.sub(rf"([\"']){_PLACEHOLDER}\1", r"{{\2}}", q)
    return re.sub(_PLACEHOLDER, r"{{\1}}", q)
