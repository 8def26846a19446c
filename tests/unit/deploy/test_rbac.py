"""The controller's ClusterRole grants exactly what the code calls, plus kopf's own needs.

The emulator the integration tests use has no RBAC, so a missing verb would first show up as a
403 in someone's cluster; an extra one is privilege nobody asked for. ``rbac_scan`` reads the
calls from the source (see its docstring for how); this file holds what cannot be read there:
the framework's own requests, each with the reason it is needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.deploy.rbac_scan import (
    REPO,
    Finding,
    Permission,
    Project,
    client_endpoints,
    endpoint_permissions,
    rules_to_permissions,
    scan,
)

CLUSTER_ROLE = REPO / "deploy" / "base" / "clusterrole.yaml"
SECRET_READER = REPO / "deploy" / "rbac" / "secret-reader.yaml"
NOTIFICATIONS_READER = REPO / "deploy" / "rbac" / "notifications-reader.yaml"

# What the code calls but the ClusterRole must NOT grant: reading Secrets cluster-wide would let
# the controller read every credential in the cluster. A Role per namespace grants it where the
# Rollouts' auth Secrets live (deploy/rbac/secret-reader.yaml; the chart's rbac.secretReaders).
PER_NAMESPACE: dict[Permission, str] = {
    Permission("", "secrets", "get"): "Prometheus credentials named by a template's auth.secretRef"
    " and notification receiver URLs (Secret sluice-notifications)",
    Permission("", "configmaps", "get"): "a namespace's default notification subscriptions "
    "(ConfigMap sluice-notifications; deploy/rbac/notifications-reader.yaml)",
}
SECRETS = {p for p in PER_NAMESPACE if p.resource == "secrets"}

# kopf's requests, made from inside the framework (kopf 1.45, cluster-wide mode, named peering).
FRAMEWORK: dict[Permission, str] = {
    Permission(
        "apiextensions.k8s.io", "customresourcedefinitions", "list"
    ): "kopf's resource observer lists CRDs to learn what it can watch",
    Permission(
        "apiextensions.k8s.io", "customresourcedefinitions", "watch"
    ): "... and watches them, so Rollouts are served once the CRD appears",
    Permission("kopf.dev", "clusterkopfpeerings", "list"): "peering observer (--peering sluice)",
    Permission("kopf.dev", "clusterkopfpeerings", "watch"): "peering observer (--peering sluice)",
    Permission("kopf.dev", "clusterkopfpeerings", "patch"): "peering keep-alives are patches",
    # (create: the controller's own call in rollouts/peering.py, found by the scan)
    Permission("", "events", "create"): "kopf posts handler outcomes as Events",
}
# Not needed, on purpose: namespaces list/watch (kopf lists namespaces only when serving some
# namespaces by glob; cluster-wide it does not), and coordination leases (kopf peers through the
# peering object, not leases).


def cluster_role() -> dict[str, Any]:
    doc = yaml.safe_load(CLUSTER_ROLE.read_text())
    assert doc["kind"] == "ClusterRole"
    return dict(doc)


@pytest.fixture(scope="module")
def findings() -> list[Finding]:
    # the CLI (rollouts/cli) talks to the API with the user's kubeconfig, not the controller's
    # ServiceAccount, so its calls need no grant in the controller's ClusterRole
    return scan(
        Project.from_paths(
            [REPO / "rollouts", REPO / "analysis"], exclude=[REPO / "rollouts" / "cli"]
        )
    )


def required(findings: list[Finding]) -> dict[Permission, list[str]]:
    out: dict[Permission, list[str]] = {p: [f"kopf: {why}"] for p, why in FRAMEWORK.items()}
    for f in findings:
        for p in f.permissions:
            out.setdefault(p, []).append(f"{f.where} {f.what}")
    return out


def test_every_api_call_in_the_code_is_understood(findings: list[Finding]) -> None:
    problems = [f"{f.where}: {f.what}: {f.problem}" for f in findings if f.problem]
    assert not problems, "calls the RBAC scan cannot map:\n" + "\n".join(problems)


def secret_reader(path: Path = SECRET_READER) -> dict[str, Any]:
    docs = {d["kind"]: d for d in yaml.safe_load_all(path.read_text()) if d}
    assert set(docs) == {"Role", "RoleBinding"}
    return docs


def test_cluster_role_grants_every_call_the_code_makes(findings: list[Finding]) -> None:
    granted = rules_to_permissions(cluster_role()["rules"]) | set(PER_NAMESPACE)
    missing = {p: where for p, where in required(findings).items() if p not in granted}
    assert not missing, "not granted by deploy/base/clusterrole.yaml:\n" + "\n".join(
        f"  {p}  <- {', '.join(w)}" for p, w in sorted(missing.items())
    )


def test_cluster_role_grants_nothing_the_code_does_not_use(findings: list[Finding]) -> None:
    granted = rules_to_permissions(cluster_role()["rules"])
    unused = sorted(granted - set(required(findings)))
    assert not unused, "granted but never used (remove, or show the call):\n" + "\n".join(
        f"  {p}" for p in unused
    )


def test_secrets_are_readable_only_where_a_role_allows_it(findings: list[Finding]) -> None:
    granted = rules_to_permissions(cluster_role()["rules"])
    assert not any(p.resource == "secrets" for p in granted), "no cluster-wide Secret access"
    # the code does read Secrets (else this exception would be dead) ...
    assert set(PER_NAMESPACE) <= set(required(findings))
    # ... and the shipped per-namespace Role grants exactly that, to the controller's account
    docs = secret_reader()
    assert rules_to_permissions(docs["Role"]["rules"]) == SECRETS
    bound_to_the_controller(docs)


@pytest.mark.parametrize("resource", ["configmaps", "secrets"])
def test_notification_objects_are_readable_only_by_name_where_a_role_allows_it(
    findings: list[Finding], resource: str
) -> None:
    """Notifications read one ConfigMap and one Secret per namespace, both named
    sluice-notifications: the per-namespace Role grants get on those names and nothing else."""
    granted = rules_to_permissions(cluster_role()["rules"])
    assert not any(p.resource == resource for p in granted), f"no cluster-wide {resource}"
    assert Permission("", resource, "get") in set(required(findings))
    docs = secret_reader(NOTIFICATIONS_READER)
    assert rules_to_permissions(docs["Role"]["rules"]) == set(PER_NAMESPACE)
    for rule in docs["Role"]["rules"]:
        assert rule["resourceNames"] == ["sluice-notifications"], rule
    bound_to_the_controller(docs)


def bound_to_the_controller(docs: dict[str, Any]) -> None:
    binding = docs["RoleBinding"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": docs["Role"]["metadata"]["name"],
    }
    assert binding["metadata"]["namespace"] == docs["Role"]["metadata"]["namespace"]
    sa = yaml.safe_load((REPO / "deploy" / "base" / "serviceaccount.yaml").read_text())
    (subject,) = binding["subjects"]
    assert (subject["name"], subject["namespace"]) == (
        sa["metadata"]["name"],
        sa["metadata"]["namespace"],
    )


def test_cluster_role_has_no_wildcards_or_escalation_verbs() -> None:
    for rule in cluster_role()["rules"]:
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[key], rule
        assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"]), rule
        assert "resourceNames" not in rule or rule["resourceNames"], rule


# ---------------------------------------------------------------------------------------------
# the scanner, on small sources with known answers (so an empty scan cannot pass silently)
# ---------------------------------------------------------------------------------------------


def perms(findings: list[Finding]) -> set[str]:
    assert not [f.problem for f in findings if f.problem]
    return {str(p) for f in findings for p in f.permissions}


def test_endpoint_table_is_read_from_the_installed_client() -> None:
    table = client_endpoints()
    (svc,) = table["patch_namespaced_service"]
    assert (svc.api, svc.http_method) == ("CoreV1Api", "PATCH")
    assert endpoint_permissions(svc) == {Permission("", "services", "patch")}
    (status,) = table["patch_namespaced_custom_object_status"]
    assert endpoint_permissions(status, targets={("sluice.dev", "rollouts")}) == {
        Permission("sluice.dev", "rollouts/status", "patch")
    }
    (lst,) = table["list_namespaced_deployment"]
    assert endpoint_permissions(lst, watch=True) == {Permission("apps", "deployments", "watch")}
    (ns,) = table["read_namespace"]
    assert endpoint_permissions(ns) == {Permission("", "namespaces", "get")}


def test_scanner_reads_literals_constants_and_imported_constants() -> None:
    project = Project.from_sources(
        {
            "pkg.consts": 'GROUP = "sluice.dev"\nPLURAL = "analysisruns"\n',
            "pkg.kube": (
                "from kubernetes import client\n"
                "from pkg.consts import GROUP, PLURAL\n"
                "from pkg import consts\n"
                "VERSION = 'v1alpha1'\n"
                "def go(api: client.CustomObjectsApi, ns: str) -> None:\n"
                "    api.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, {})\n"
                "    api.delete_namespaced_custom_object(group=consts.GROUP, version='v1',\n"
                "        namespace=ns, plural='analysisruns', name='x')\n"
                "    client.AppsV1Api().read_namespaced_deployment('a', ns)\n"
            ),
        }
    )
    assert perms(scan(project)) == {
        "sluice.dev:analysisruns:create",
        "sluice.dev:analysisruns:delete",
        "apps:deployments:get",
    }


def test_scanner_follows_class_attributes_subclasses_and_parameters() -> None:
    project = Project.from_sources(
        {
            "pkg.routers": (
                "class Base:\n"
                "    GROUP: str\n"
                "    PLURAL = 'virtualservices'\n"
                "    def __init__(self, api, kind):\n"
                "        self.api = api\n"
                "        self.kind = kind\n"
                "    def weights(self, ns, name):\n"
                "        return self._patch(self.GROUP, self.PLURAL, ns, name)\n"
                "    def _patch(self, group, plural, ns, name):\n"
                "        self.api.patch_namespaced_custom_object(group, 'v1', ns, plural, name, {})\n"
                "    def sub(self, ns, name):\n"
                "        self.api.get_namespaced_custom_object_status(self.GROUP, 'v1', ns, self.kind, name)\n"
                "class Istio(Base):\n"
                "    GROUP = 'networking.istio.io'\n"
                "    def __init__(self, api):\n"
                "        super().__init__(api, 'virtualservices')\n"
                "class Smi(Base):\n"
                "    GROUP = 'split.smi-spec.io'\n"
                "    PLURAL = 'trafficsplits'\n"
                "    def __init__(self, api):\n"
                "        super().__init__(api, kind='trafficsplits')\n"
            )
        }
    )
    assert perms(scan(project)) == {
        # the class attributes combine: an over-approximation the test accepts, since
        # `self.X` may be any subclass's value at run time
        f"{g}:{p}:patch"
        for g in ("networking.istio.io", "split.smi-spec.io")
        for p in ("virtualservices", "trafficsplits")
    } | {
        f"{g}:{p}/status:get"
        for g in ("networking.istio.io", "split.smi-spec.io")
        for p in ("virtualservices", "trafficsplits")
    }


def test_scanner_tells_apart_same_named_methods_by_receiver_type() -> None:
    project = Project.from_sources(
        {
            "pkg.events": (
                "import kubernetes\n"
                "class Emitter:\n"
                "    def __init__(self, api):\n"
                "        self.core = kubernetes.client.CoreV1Api(api)\n"
                "        self.events = kubernetes.client.EventsV1Api(api)\n"
                "    def emit(self, ns, body):\n"
                "        self.core.create_namespaced_event(ns, body)\n"
                "        self.events.create_namespaced_event(ns, body)\n"
                "def unknown(x, ns, body):\n"
                "    x.create_namespaced_event(ns, body)\n"
            )
        }
    )
    found = scan(project)
    assert {str(p) for f in found for p in f.permissions} == {
        "core:events:create",
        "events.k8s.io:events:create",
    }
    (problem,) = [f for f in found if f.problem]
    assert "receiver type unknown" in (problem.problem or "")


def test_scanner_maps_watch_streams_and_kopf_handlers() -> None:
    project = Project.from_sources(
        {
            "pkg.op": (
                "import kopf\n"
                "from kubernetes import client, watch\n"
                "GROUP, VERSION = 'sluice.dev', 'v1alpha1'\n"
                "@kopf.on.create('sluice.dev', 'v1alpha1', 'rollouts')\n"
                "def created(**_): ...\n"
                "@kopf.on.event('deployments.apps', labels={'sluice.dev/rollout': kopf.PRESENT})\n"
                "def slot(**_): ...\n"
                "@kopf.timer('sluice.dev', 'rollouts', interval=5)\n"
                "def tick(logger, **_):\n"
                "    kopf.info({}, reason='Step', message='x')\n"
                "def follow(api: client.CustomObjectsApi):\n"
                "    for ev in watch.Watch().stream(api.list_cluster_custom_object, 'sluice.dev', 'v1alpha1', 'analysisruns'):\n"
                "        pass\n"
            )
        }
    )
    assert perms(scan(project)) == {
        "sluice.dev:rollouts:list",
        "sluice.dev:rollouts:watch",
        "sluice.dev:rollouts:patch",
        "apps:deployments:list",
        "apps:deployments:watch",
        "core:events:create",
        "sluice.dev:analysisruns:watch",  # Watch.stream sends only the watch request
    }


def test_scanner_reports_what_it_cannot_read_instead_of_guessing() -> None:
    project = Project.from_sources(
        {
            "pkg.dyn": (
                "def go(api, ns, kind):\n"
                "    api.patch_namespaced_custom_object('x.io', 'v1', ns, f'{kind}s', 'n', {})\n"
            )
        }
    )
    (finding,) = scan(project)
    assert finding.problem is not None and "kind" in finding.problem
    assert not finding.permissions


def test_deployment_runs_as_the_bound_service_account() -> None:
    base = REPO / "deploy" / "base"
    binding = yaml.safe_load((base / "clusterrolebinding.yaml").read_text())
    deployment = yaml.safe_load((base / "deployment.yaml").read_text())
    sa = yaml.safe_load((base / "serviceaccount.yaml").read_text())
    (subject,) = binding["subjects"]
    assert binding["roleRef"]["name"] == cluster_role()["metadata"]["name"]
    assert (subject["kind"], subject["name"], subject["namespace"]) == (
        "ServiceAccount",
        sa["metadata"]["name"],
        sa["metadata"]["namespace"],
    )
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"]
    assert deployment["metadata"]["namespace"] == sa["metadata"]["namespace"]


def test_scanner_expands_starred_kopf_resources_and_skips_activities() -> None:
    project = Project.from_sources(
        {
            "pkg.op": (
                "import kopf\n"
                "GROUP = 'sluice.dev'\n"
                "def build(registry):\n"
                "    resource = (GROUP, 'v1alpha1', 'rollouts')\n"
                "    @kopf.on.startup(registry=registry)\n"
                "    def startup(**_): ...\n"
                "    @kopf.on.probe(id='x', registry=registry)\n"
                "    def probe(**_): ...\n"
                "    @kopf.on.event(*resource, registry=registry)\n"
                "    def seen(**_): ...\n"
            )
        }
    )
    assert perms(scan(project)) == {"sluice.dev:rollouts:list", "sluice.dev:rollouts:watch"}
