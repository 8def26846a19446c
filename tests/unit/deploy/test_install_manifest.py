"""deploy/install.yaml and the chart's copies of deploy/ files are current, and one apply works.

``python scripts/manifests.py`` writes them from the kustomization (with the pinned kubectl);
``--check`` is what this test runs, so changing deploy/ or crds/ without regenerating fails here
with the command to run.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from types import ModuleType

import yaml

from tests.support.tools import REPO, tool


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("manifests", REPO / "scripts" / "manifests.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["manifests"] = module
    spec.loader.exec_module(module)
    return module


manifests = load()


def test_generated_files_are_current() -> None:
    tool("kubectl")  # a clear failure if set-up has not installed it
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "manifests.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_check_names_a_stale_and_a_leftover_file() -> None:
    files = manifests.expected()
    assert manifests.INSTALL in files and len(files) >= 8
    assert manifests.stale(files) == []
    edited = dict(files)
    edited[manifests.INSTALL] = files[manifests.INSTALL] + "# edited\n"
    assert manifests.stale(edited) == [manifests.INSTALL]
    crd = manifests.CHART / "crds" / "rollouts.sluice.dev.yaml"
    dropped = {p: t for p, t in files.items() if p != crd}
    assert manifests.stale(dropped) == [crd]  # still on disk, no longer generated


def test_install_yaml_is_the_kustomization_and_applies_in_one_run() -> None:
    text = manifests.INSTALL.read_text()
    objects = [d for d in yaml.safe_load_all(text) if d]
    kinds = {o["kind"] for o in objects}
    assert {"Namespace", "CustomResourceDefinition", "ClusterRole", "Deployment"} <= kinds
    # kubectl maps every object before creating any: none may be of a kind this file's CRDs add
    added = {
        (o["spec"]["group"], o["spec"]["names"]["kind"])
        for o in objects
        if o["kind"] == "CustomResourceDefinition"
    }
    for o in objects:
        assert (o["apiVersion"].rpartition("/")[0], o["kind"]) not in added, o["metadata"]
    # the Namespace comes before everything that lives in it
    first_namespaced = next(i for i, o in enumerate(objects) if o["metadata"].get("namespace"))
    assert [o["kind"] for o in objects[:first_namespaced]].count("Namespace") == 1
