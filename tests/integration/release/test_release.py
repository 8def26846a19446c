"""scripts/release.sh builds what a release publishes, and the wheel installs and runs.

One build for the module (about 20 s: ``python -m build`` makes the sdist, then the wheel from
it). The wheel goes into a fresh virtualenv with ``--no-deps``; the runtime dependencies come
from the development virtualenv through a ``.pth`` path entry (installing numpy, scipy and
kubernetes again would only test pip), while ``rollouts`` itself must be the wheel's copy, not the
checkout: the test checks where it was imported from.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.tools import REPO, run_tool, tool

pytestmark = pytest.mark.integration

VERSION = "0.1.0"


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    for name in ("helm", "kubectl"):
        tool(name)
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "release.sh"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    yield out


def test_release_holds_wheel_sdist_manifest_and_chart(dist: Path) -> None:
    names = sorted(p.name for p in dist.iterdir())
    assert names == [
        "SHA256SUMS",
        "install.yaml",
        f"sluice-{VERSION}.tgz",
        f"sluice_rollouts-{VERSION}-py3-none-any.whl",
        f"sluice_rollouts-{VERSION}.tar.gz",
    ]
    assert (dist / "install.yaml").read_text() == (REPO / "deploy" / "install.yaml").read_text()
    sums = (dist / "SHA256SUMS").read_text().split("\n")
    assert len([s for s in sums if s]) == 4
    with zipfile.ZipFile(dist / f"sluice_rollouts-{VERSION}-py3-none-any.whl") as whl:
        tops = {n.split("/")[0] for n in whl.namelist()}
    assert tops == {"rollouts", "analysis", "simulations", f"sluice_rollouts-{VERSION}.dist-info"}
    with tarfile.open(dist / f"sluice_rollouts-{VERSION}.tar.gz") as sdist:
        members = set(sdist.getnames())
    assert f"sluice_rollouts-{VERSION}/pyproject.toml" in members
    assert f"sluice_rollouts-{VERSION}/rollouts/cli/main.py" in members


def test_packaged_chart_lints_and_renders_like_the_chart_directory(dist: Path) -> None:
    packaged = str(dist / f"sluice-{VERSION}.tgz")
    run_tool("helm", ["lint", "--strict", packaged])
    from_tgz = run_tool(
        "helm", ["template", "sluice", packaged, "-n", "sluice-system", "--include-crds"]
    )
    from_dir = run_tool(
        "helm",
        [
            "template",
            "sluice",
            str(REPO / "charts" / "sluice"),
            "-n",
            "sluice-system",
            "--include-crds",
        ],
    )
    assert list(yaml.safe_load_all(from_tgz.stdout)) == list(yaml.safe_load_all(from_dir.stdout))


def test_wheel_installs_into_a_fresh_venv_and_runs(dist: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)  # the development pip installs into it (faster)
    python = env_dir / "bin" / "python"
    wheel = dist / f"sluice_rollouts-{VERSION}-py3-none-any.whl"
    pip = [sys.executable, "-m", "pip", "--python", str(python)]
    install = subprocess.run(
        [*pip, "install", "-q", "--no-deps", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert install.returncode == 0, install.stderr
    # dependencies from the development environment, appended after the venv's own packages
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "zz-dev-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    version = subprocess.run(
        [str(env_dir / "bin" / "sluice"), "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,  # not the checkout: `rollouts` must come from the wheel
    )
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"sluice, version {VERSION}"
    where = subprocess.run(
        [str(python), "-c", "import rollouts.cli.main as m; print(m.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(env_dir), where
    assert (env_dir / "bin" / "kubectl-sluice").exists()  # the kubectl plugin entry point
    # a real command through the installed package: lint a shipped example
    sim = subprocess.run(
        [
            str(env_dir / "bin" / "sluice"),
            "lint",
            str(REPO / "deploy" / "examples" / "canary-no-mesh.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert sim.returncode == 0, sim.stdout + sim.stderr
