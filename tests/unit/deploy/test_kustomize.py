"""``kubectl apply -k deploy/`` installs a controller that can start: the kustomization is whole.

Two layers. The Python layer always runs: it follows the kustomizations the way kustomize does
for the features used here (``resources``, ``labels``, ``images``; a test fails if another field
appears, so this model cannot silently fall behind), parses every object, and checks that the
pieces agree with each other (namespaces, the Service selecting the Deployment's pods, probe and
Service ports naming container ports, the security settings the restricted Pod Security level
demands). The kubectl layer runs ``kubectl kustomize deploy/`` and compares its output with the
Python model, with the kubectl ``bash scripts/setup.sh`` installs into .venv/bin from PyPI
(scripts/kube_tools.py), so it runs everywhere the suite does and never downloads anything itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from rollouts.peering import CLUSTER_PEERINGS, PEERING_GROUP, PEERING_VERSION
from rollouts.settings import Settings
from tests.support.tools import run_tool
from tests.unit.deploy.rbac_scan import REPO

DEPLOY = REPO / "deploy"
NAMESPACE = "sluice-system"
KNOWN_FIELDS = {"apiVersion", "kind", "resources", "labels", "images"}
CLUSTER_SCOPED = {
    "Namespace",
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
}

Obj = dict[str, Any]


def build(directory: Path) -> list[Obj]:
    """The objects a kustomization directory yields, in order, with its images applied."""
    kfile = directory / "kustomization.yaml"
    assert kfile.is_file(), f"{directory} has no kustomization.yaml"
    k = yaml.safe_load(kfile.read_text())
    assert set(k) <= KNOWN_FIELDS, (
        f"{kfile}: fields this test does not model: {set(k) - KNOWN_FIELDS}"
    )
    objects: list[Obj] = []
    for entry in k.get("resources", []):
        target = (directory / entry).resolve()
        assert target.exists(), f"{kfile}: resource {entry} does not exist"
        if target.is_dir():
            objects += build(target)
        else:
            docs = [d for d in yaml.safe_load_all(target.read_text()) if d is not None]
            assert docs, f"{target} holds no object"
            objects += docs
    for image in k.get("images", []):
        for container in containers(objects):
            if container["image"] == image["name"]:
                container["image"] = f"{image['newName']}:{image['newTag']}"
    return objects


def containers(objects: list[Obj]) -> list[Obj]:
    return [
        c
        for o in objects
        if o["kind"] == "Deployment"
        for c in o["spec"]["template"]["spec"]["containers"]
    ]


def identity(o: Obj) -> tuple[str, str, str]:
    return (o["kind"], o["metadata"]["name"], o["metadata"].get("namespace", ""))


@pytest.fixture(scope="module")
def objects() -> list[Obj]:
    return build(DEPLOY)


def one(objects: list[Obj], kind: str) -> Obj:
    (found,) = [o for o in objects if o["kind"] == kind]
    return found


def test_every_object_is_unique_and_namespaced_ones_live_in_sluice_system(
    objects: list[Obj],
) -> None:
    ids = [identity(o) for o in objects]
    assert len(ids) == len(set(ids))
    for o in objects:
        ns = o["metadata"].get("namespace")
        if o["kind"] in CLUSTER_SCOPED:
            assert ns is None, f"{identity(o)} is cluster-scoped"
        else:
            assert ns == NAMESPACE, f"{identity(o)} must name namespace {NAMESPACE}"
    assert one(objects, "Namespace")["metadata"]["name"] == NAMESPACE


def test_all_of_sluices_crds_and_kopfs_peering_crd_are_installed(objects: list[Obj]) -> None:
    crds = {o["metadata"]["name"]: o for o in objects if o["kind"] == "CustomResourceDefinition"}
    generated = {
        p.stem.split("_", 1)[1] + "." + p.stem.split("_", 1)[0]
        for p in (REPO / "crds").glob("*.yaml")
        if "_" in p.stem
    }
    assert generated, "crds/ holds no generated CRD"
    assert generated | {"clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"} == set(crds)
    assert "rollouts.sluice.dev" in crds
    # the peering object the controller creates (rollouts/peering.py) is of this CRD's kind
    peering_crd = crds[f"{CLUSTER_PEERINGS}.{PEERING_GROUP}"]["spec"]
    assert peering_crd["scope"] == "Cluster"
    assert peering_crd["names"]["kind"] == "ClusterKopfPeering"
    assert peering_crd["versions"][0]["name"] == PEERING_VERSION
    assert crds["kopfpeerings.kopf.dev"]["spec"]["scope"] == "Namespaced"


def test_no_object_needs_a_crd_applied_in_the_same_run(objects: list[Obj]) -> None:
    """`kubectl apply` maps every object before creating any: an object whose kind comes from a
    CRD of the same apply fails on a fresh cluster (the reason the peering object went)."""
    served = {
        (o["spec"]["group"], o["spec"]["names"]["kind"])
        for o in objects
        if o["kind"] == "CustomResourceDefinition"
    }
    for o in objects:
        group = o["apiVersion"].rpartition("/")[0]
        assert (group, o["kind"]) not in served, identity(o)


def test_controller_joins_the_peering_object_it_creates(objects: list[Obj]) -> None:
    (container,) = containers(objects)
    command = " ".join(container.get("command", []) + container.get("args", []))
    # the controller creates and joins the peering object named in its settings (no flag for it),
    # and may create it: the ClusterRole grants create on that kind
    rules = one(objects, "ClusterRole")["rules"]
    assert any(
        CLUSTER_PEERINGS in r["resources"] and {"create", "patch"} <= set(r["verbs"]) for r in rules
    )
    assert Settings().peering_name == "sluice.dev"
    assert "--standalone" not in command
    assert "--all-namespaces" in command
    # each replica draws its own priority: equal priorities make kopf pause every peer
    assert "--priority" in command and "/dev/urandom" in command
    assert one(objects, "Deployment")["spec"]["replicas"] == 2


def test_metrics_service_selects_the_controller_pods_and_ports_match(objects: list[Obj]) -> None:
    deployment = one(objects, "Deployment")
    service = one(objects, "Service")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert service["spec"]["selector"].items() <= pod_labels.items()
    (container,) = containers(objects)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for port in service["spec"]["ports"]:
        assert port["targetPort"] in ports
    assert container["livenessProbe"]["httpGet"]["port"] in ports
    command = " ".join(container.get("command", []) + container.get("args", []))
    assert f"--metrics-port {ports['metrics']}" in command
    assert f"--liveness-port {ports['liveness']}" in command
    pdb = one(objects, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_controller_pod_meets_the_restricted_pod_security_level(objects: list[Obj]) -> None:
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert not pod.get("hostNetwork") and not pod.get("hostPID")
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"]["drop"] == ["ALL"] and not sc["capabilities"].get("add")
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container["resources"][kind])
    labels = one(objects, "Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_image_is_set_by_the_kustomization(objects: list[Obj]) -> None:
    (container,) = containers(objects)
    name, _, tag = container["image"].rpartition(":")
    assert "/" in name and tag, container["image"]


def test_kubectl_kustomize_builds_the_same_objects(objects: list[Obj]) -> None:
    out = run_tool("kubectl", ["kustomize", str(DEPLOY)], timeout=60)
    built = [d for d in yaml.safe_load_all(out.stdout) if d is not None]
    assert sorted(map(identity, built)) == sorted(map(identity, objects))
    for o in built:
        assert o["metadata"]["labels"]["app.kubernetes.io/part-of"] == "sluice", identity(o)
    (container,) = containers(built)
    assert container["image"] == containers(objects)[0]["image"]
