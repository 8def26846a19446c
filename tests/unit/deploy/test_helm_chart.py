"""The Helm chart (charts/sluice) installs what ``kubectl apply -k deploy/`` installs.

Both are rendered by the real tools (``helm template``, ``kubectl kustomize``, from .venv/bin:
``bash scripts/setup.sh`` installs them) and compared object by object: same kinds, names,
namespaces and contents, with the defaults. Helm's own labels are the one allowed difference, and
the Namespace, which Helm creates itself (``--create-namespace``) unless ``namespace.create``.
The values that change the objects (namespace-scoped mode, Secret readers, a single replica,
monitoring) are rendered too, and what they render is checked against the code's needs.
"""

from __future__ import annotations

import copy
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from rollouts.cli.run_controller import run as run_command
from tests.support.tools import run_tool
from tests.unit.deploy.rbac_scan import REPO, Finding, Permission, rules_to_permissions
from tests.unit.deploy.test_rbac import PER_NAMESPACE, findings, required

__all__ = ["findings"]

CHART = REPO / "charts" / "sluice"
NS = "sluice-system"
HELM_LABELS = {
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "helm.sh/chart",
}
# needed only by a cluster-wide controller (kopf's CRD scanning and cluster peering)
CLUSTER_ONLY = {
    Permission("apiextensions.k8s.io", "customresourcedefinitions", "list"),
    Permission("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
    Permission("kopf.dev", "clusterkopfpeerings", "list"),
    Permission("kopf.dev", "clusterkopfpeerings", "watch"),
    Permission("kopf.dev", "clusterkopfpeerings", "patch"),
    Permission("kopf.dev", "clusterkopfpeerings", "create"),
}
Obj = dict[str, Any]


def docs(text: str) -> list[Obj]:
    return [d for d in yaml.safe_load_all(text) if d]


def helm_template(
    *args: str, values: dict[str, Any] | None = None, tmp: Path | None = None
) -> list[Obj]:
    extra = list(args)
    if values is not None:
        assert tmp is not None
        path = tmp / "values.yaml"
        path.write_text(yaml.safe_dump(values))
        extra += ["-f", str(path)]
    out = run_tool("helm", ["template", "sluice", str(CHART), "-n", NS, *extra])
    return docs(out.stdout)


def kustomize(directory: Path) -> list[Obj]:
    return docs(run_tool("kubectl", ["kustomize", str(directory)]).stdout)


def without_helm_labels(o: Obj) -> Obj:
    o = copy.deepcopy(o)
    labels = o["metadata"].get("labels") or {}
    for key in HELM_LABELS:
        labels.pop(key, None)
    return o


def key(o: Obj) -> tuple[str, str, str]:
    return (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])


def by_key(objects: list[Obj]) -> dict[tuple[str, str, str], Obj]:
    out = {key(o): without_helm_labels(o) for o in objects}
    assert len(out) == len(objects), "duplicate objects"
    return out


def one(objects: list[Obj], kind: str, name: str | None = None) -> Obj:
    (found,) = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    return found


def controller_args(objects: list[Obj]) -> list[str]:
    """The controller's `sluice run` arguments, as the container's shell splits them."""
    (container,) = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["/bin/sh", "-c"]
    (script,) = container["args"]
    words = shlex.split(script)
    assert words[:3] == ["exec", "sluice", "run"], words
    return words[3:]


def parses(args: list[str]) -> dict[str, Any]:
    """`sluice run`'s own option parser accepts the arguments (nothing is run); the shell's
    random priority is replaced by a number, as the pod's shell would."""
    words = ["12345" if w.startswith("$(") else w for w in args]
    ctx = run_command.make_context("run", words)
    return dict(ctx.params)


# ------------------------------------------------------------------------------- lint


def test_helm_lint_passes_for_the_defaults_and_the_namespace_scoped_mode() -> None:
    out = run_tool("helm", ["lint", "--strict", str(CHART)])
    assert "1 chart(s) linted, 0 chart(s) failed" in out.stdout, out.stdout
    scoped = run_tool(
        "helm",
        [
            "lint",
            "--strict",
            str(CHART),
            "--set",
            "watchNamespaces={shop,web}",
            "--set",
            "namespace.create=true",
        ],
    )
    assert "0 chart(s) failed" in scoped.stdout, scoped.stdout


def test_chart_version_follows_the_project_and_the_kustomize_image() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert chart["version"] == chart["appVersion"] == project
    k = yaml.safe_load((REPO / "deploy" / "base" / "kustomization.yaml").read_text())
    (image,) = k["images"]
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["image"]["repository"] == image["newName"]
    assert image["newTag"] == chart["appVersion"]


# ------------------------------------------------------------------- same objects as kustomize


def test_default_render_is_the_kustomize_base_object_for_object() -> None:
    helm = by_key(helm_template("--include-crds"))
    kust = by_key(kustomize(REPO / "deploy"))
    namespace = ("Namespace", "", NS)
    # Helm creates its release namespace itself; everything else is the same, field for field
    assert namespace in kust and namespace not in helm
    assert sorted(helm) == sorted(k for k in kust if k != namespace)
    for k, obj in helm.items():
        assert obj == kust[k], f"{k} differs from deploy/"
    # ... and with namespace.create the Namespace (with its Pod Security label) too
    created = by_key(helm_template("--set", "namespace.create=true"))
    assert created[namespace] == kust[namespace]


def test_monitoring_values_render_deploy_monitoring() -> None:
    helm = by_key(
        helm_template(
            "--show-only",
            "templates/monitoring.yaml",
            "--set",
            "metrics.serviceMonitor.enabled=true",
            "--set",
            "metrics.prometheusRule.enabled=true",
            "--set",
            "metrics.dashboard.enabled=true",
        )
    )
    kust = by_key(kustomize(REPO / "deploy" / "monitoring"))
    assert sorted(helm) == sorted(kust)
    for k, obj in helm.items():
        assert obj == kust[k], f"{k} differs from deploy/monitoring/"
    # off by default: they need the Prometheus Operator's CRDs
    defaults = helm_template()
    assert not [
        o for o in defaults if o["kind"] in ("ServiceMonitor", "PrometheusRule", "ConfigMap")
    ]


def test_the_default_controller_command_parses() -> None:
    args = controller_args(helm_template())
    params = parses(args)
    assert params["all_namespaces"] and not params["namespaces"]
    assert params["priority"] == 12345 and not params["standalone"]
    assert (params["metrics_port"], params["liveness_port"], params["log_format"]) == (
        8080,
        8081,
        "json",
    )


# --------------------------------------------------------------------------- values


def test_namespace_scoped_mode_grants_per_namespace_what_the_code_calls(
    findings: list[Finding], tmp_path: Path
) -> None:
    objects = helm_template(
        "--include-crds",
        values={
            "watchNamespaces": ["shop", "web"],
            "rbac": {"secretReaders": [{"namespace": "shop", "names": ["prom-auth"]}]},
        },
        tmp=tmp_path,
    )
    kinds = {(o["kind"], o["metadata"].get("namespace", "")) for o in objects}
    assert {
        ("Role", "shop"),
        ("Role", "web"),
        ("RoleBinding", "shop"),
        ("RoleBinding", "web"),
    } <= kinds
    # the only ClusterRole reads ClusterAnalysisTemplates, nothing namespaced
    (cluster_role,) = [o for o in objects if o["kind"] == "ClusterRole"]
    assert rules_to_permissions(cluster_role["rules"]) == {
        Permission("sluice.dev", "clusteranalysistemplates", "get")
    }
    assert cluster_role["metadata"]["name"] == f"sluice-controller-{NS}"
    needed = set(required(findings)) - CLUSTER_ONLY - set(PER_NAMESPACE)
    needed -= {Permission("sluice.dev", "clusteranalysistemplates", "get")}
    needed |= {Permission("kopf.dev", "kopfpeerings", v) for v in ("list", "watch", "patch")}
    for ns in ("shop", "web"):
        role = one(
            [o for o in objects if o["metadata"].get("namespace") == ns],
            "Role",
            "sluice-controller",
        )
        assert rules_to_permissions(role["rules"]) == needed, ns
        binding = one(
            [o for o in objects if o["metadata"].get("namespace") == ns],
            "RoleBinding",
            "sluice-controller",
        )
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "sluice", "namespace": NS}
        ]
        # kopf peers through a KopfPeering in each served namespace (its CRD is in crds/)
        peering = one([o for o in objects if o["metadata"].get("namespace") == ns], "KopfPeering")
        assert peering["metadata"]["name"] == "sluice.dev"
    assert "kopfpeerings.kopf.dev" in {
        o["metadata"]["name"] for o in objects if o["kind"] == "CustomResourceDefinition"
    }
    # Secrets: only in shop, only the named one
    reader = one(
        [o for o in objects if o["metadata"].get("namespace") == "shop"],
        "Role",
        "sluice-secret-reader",
    )
    assert reader["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "verbs": ["get"],
            "resourceNames": ["prom-auth"],
        }
    ]
    assert not [
        o
        for o in objects
        if o["kind"] == "Role"
        and o["metadata"]["namespace"] == "web"
        and "secret" in o["metadata"]["name"]
    ]
    # the controller serves exactly those namespaces
    params = parses(controller_args(objects))
    assert params["namespaces"] == ("shop", "web") and not params["all_namespaces"]


def test_secret_readers_without_names_grant_get_in_that_namespace_only(tmp_path: Path) -> None:
    objects = helm_template(
        values={"rbac": {"secretReaders": [{"namespace": "payments"}]}}, tmp=tmp_path
    )
    (reader,) = [o for o in objects if o["kind"] == "Role"]
    assert reader["metadata"]["namespace"] == "payments"
    assert reader["rules"] == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]
    binding = one(objects, "RoleBinding")
    assert binding["roleRef"]["name"] == reader["metadata"]["name"]
    # the cluster-wide ClusterRole still grants no Secrets
    assert not [
        p
        for p in rules_to_permissions(one(objects, "ClusterRole")["rules"])
        if p.resource == "secrets"
    ]


def test_notification_readers_grant_the_two_named_objects_only(tmp_path: Path) -> None:
    objects = helm_template(values={"rbac": {"notificationReaders": ["shop"]}}, tmp=tmp_path)
    (reader,) = [o for o in objects if o["kind"] == "Role"]
    assert reader["metadata"]["namespace"] == "shop"
    shipped = yaml.safe_load_all((REPO / "deploy/rbac/notifications-reader.yaml").read_text())
    (role,) = [d for d in shipped if d["kind"] == "Role"]
    assert reader["rules"] == role["rules"]  # the chart and deploy/rbac grant the same
    binding = one(objects, "RoleBinding")
    assert binding["roleRef"]["name"] == reader["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "sluice", "namespace": NS}]


def test_image_resources_replicas_and_extra_args(tmp_path: Path) -> None:
    objects = helm_template(
        values={
            "image": {
                "repository": "registry.example.com/sluice",
                "tag": "9.9.9",
                "pullPolicy": "Always",
            },
            "resources": {
                "requests": {"cpu": "10m", "memory": "64Mi"},
                "limits": {"cpu": "2", "memory": "256Mi"},
            },
            "replicas": 3,
            "extraArgs": [
                "--prometheus-url",
                "http://prom.monitoring:9090",
                "--analysis-run-history",
                "7",
            ],
        },
        tmp=tmp_path,
    )
    deployment = one(objects, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.example.com/sluice:9.9.9"
    assert container["imagePullPolicy"] == "Always"
    assert container["resources"] == {
        "requests": {"cpu": "10m", "memory": "64Mi"},
        "limits": {"cpu": "2", "memory": "256Mi"},
    }
    assert deployment["spec"]["replicas"] == 3
    params = parses(controller_args(objects))
    assert params["prometheus_url"] == "http://prom.monitoring:9090"
    assert params["analysis_run_history"] == 7


def test_a_single_standalone_replica_and_the_refused_combination(tmp_path: Path) -> None:
    objects = helm_template("--set", "replicas=1", "--set", "peering.enabled=false")
    args = controller_args(objects)
    assert "--standalone" in args and "--priority" not in args
    assert parses(args)["standalone"] is True
    assert not [o for o in objects if o["kind"] == "PodDisruptionBudget"]  # would block every drain
    refused = run_tool(
        "helm",
        ["template", "sluice", str(CHART), "--set", "replicas=2", "--set", "peering.enabled=false"],
        check=False,
    )
    assert refused.returncode != 0
    assert "replicas > 1 needs peering.enabled: true" in refused.stderr
    bad = run_tool(
        "helm", ["template", "sluice", str(CHART), "--set", "watchNamespaces={shop-*}"], check=False
    )
    assert bad.returncode != 0 and 'watchNamespaces: "shop-*" is not a namespace name' in bad.stderr


@pytest.mark.parametrize("values", [{}, {"watchNamespaces": ["shop"]}])
def test_helm_install_order_needs_no_second_run(values: dict[str, Any], tmp_path: Path) -> None:
    """Helm applies crds/ first and waits for them; no template may be of a kind those CRDs add
    except the namespaced KopfPeering (whose CRD then exists), and nothing of kopf's cluster
    peering: the controller creates that one."""
    objects = helm_template(values=values, tmp=tmp_path)
    assert not [o for o in objects if o["kind"] == "CustomResourceDefinition"]
    assert not [o for o in objects if o["kind"] == "ClusterKopfPeering"]
    crd_kinds = {
        yaml.safe_load(p.read_text())["spec"]["names"]["kind"]
        for p in (CHART / "crds").glob("*.yaml")
    }
    assert {o["kind"] for o in objects if o["kind"] in crd_kinds} <= {"KopfPeering"}
