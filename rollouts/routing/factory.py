"""Which traffic router a Rollout asks for, built over a Kubernetes API client.

The operator calls this once per reconcile; routers hold no state beyond their names, so a fresh
one each time costs nothing and always follows the latest spec.
"""

from __future__ import annotations

from kubernetes import client

from analysis.store.retry import Timeout
from rollouts.api.rollout import Rollout
from rollouts.routing import gateway_api, istio, nginx, smi
from rollouts.routing.common import ObjectCache
from rollouts.routing.port import TrafficRouter

# What the routers do to which resources, for the controller's RBAC (group, plural, verbs);
# list and watch feed the operator's watch cache.
PERMISSIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (istio.GROUP, "virtualservices", ("get", "list", "watch", "patch")),
    (gateway_api.RESOURCE.group, gateway_api.RESOURCE.plural, ("get", "list", "watch", "patch")),
    (smi.GROUP, "trafficsplits", ("get", "list", "watch", "patch")),
    (
        nginx.RESOURCE.group,
        nginx.RESOURCE.plural,
        ("get", "list", "watch", "create", "patch", "delete"),
    ),
)


def router_for(
    rollout: Rollout,
    api: client.ApiClient,
    *,
    istio_version: str = "v1beta1",
    smi_version: str = "v1alpha2",
    timeout: Timeout | None = None,
    cache: ObjectCache | None = None,
) -> TrafficRouter | None:
    """The router for a canary with trafficRouting; None with no router (replica ratio) and for
    blue-green, which switches Services instead of weighting them.

    ``istio_version``/``smi_version`` pick the served API version of those CRDs (controller
    settings), since clusters differ in which versions they still serve. ``timeout`` is the
    ``(connect, read)`` bound on each of the router's calls; ``cache``: reads served from the
    operator's watches.
    """
    router = _router_for(rollout, api, istio_version=istio_version, smi_version=smi_version)
    if router is not None:
        router.timeout = timeout
        router.cache = cache
    return router


def _router_for(
    rollout: Rollout,
    api: client.ApiClient,
    *,
    istio_version: str,
    smi_version: str,
) -> istio.IstioRouter | gateway_api.GatewayAPIRouter | smi.SMIRouter | nginx.NginxRouter | None:
    canary = rollout.canary
    if canary is None or canary.traffic_routing is None:
        return None
    routing = canary.traffic_routing
    namespace = rollout.metadata.namespace
    services = {"stable_service": canary.stable_service, "canary_service": canary.canary_service}
    prefix = f"sluice-{rollout.metadata.name}"  # names the header and mirror routes it owns
    if routing.istio is not None:
        vs = routing.istio.virtual_service
        return istio.IstioRouter(
            api,
            namespace,
            vs.name,
            routes=vs.routes,
            version=istio_version,
            prefix=prefix,
            **services,
        )
    if routing.gateway_api is not None:
        return gateway_api.GatewayAPIRouter(
            api, namespace, routing.gateway_api.http_route.name, prefix=prefix, **services
        )
    if routing.smi is not None:
        return smi.SMIRouter(
            api, namespace, routing.smi.traffic_split_name, version=smi_version, **services
        )
    assert routing.nginx is not None
    return nginx.NginxRouter(
        api,
        namespace,
        stable_ingress=routing.nginx.stable_ingress,
        owner=nginx.Owner(rollout.metadata.name, rollout.metadata.uid),
        **services,
    )
