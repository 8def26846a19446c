#!/usr/bin/env bash
# Builds a release into dist/ (or --out DIR): the wheel and sdist of sluice-rollouts, the
# single-file manifest install.yaml and the packaged Helm chart, plus SHA256SUMS.
#   bash scripts/release.sh [--out DIR]
# Needs the set-up (bash scripts/setup.sh: build, helm and kubectl in .venv). Refuses to build when
# a generated file is stale or the chart's version is not the project's, so what is published is
# what the repository says. The wheel is built from the sdist (python -m build), which proves the
# sdist is complete. tests/integration/release/test_release.py runs this and installs the wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
out=dist
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    *) echo "release.sh: unknown argument $1 (usage: release.sh [--out DIR])" >&2; exit 2 ;;
  esac
done
for t in python helm kubectl; do
  [ -x ".venv/bin/$t" ] || { echo "release.sh: .venv/bin/$t missing: run bash scripts/setup.sh" >&2; exit 1; }
done
version=$(.venv/bin/python -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
chart_version=$(sed -n 's/^version: *//p' charts/sluice/Chart.yaml)
if [ "$version" != "$chart_version" ]; then
  echo "release.sh: pyproject.toml says $version, charts/sluice/Chart.yaml says $chart_version" >&2
  exit 1
fi
.venv/bin/python scripts/manifests.py --check || {
  echo "release.sh: generated files are stale (run .venv/bin/python scripts/manifests.py)" >&2
  exit 1
}
.venv/bin/helm lint --strict charts/sluice >/dev/null

mkdir -p "$out"
out=$(cd "$out" && pwd)
rm -f "$out"/sluice_rollouts-* "$out"/sluice-*.tgz "$out"/install.yaml "$out"/SHA256SUMS
.venv/bin/python -m build --outdir "$out" . >"$out/build.log" 2>&1 || {
  tail -20 "$out/build.log" >&2
  exit 1
}
rm -f "$out/build.log"
cp deploy/install.yaml "$out/install.yaml"
.venv/bin/helm package charts/sluice --destination "$out" >/dev/null
(cd "$out" && sha256sum sluice_rollouts-"$version"* sluice-"$version".tgz install.yaml >SHA256SUMS)
echo "release $version in $out:"
(cd "$out" && ls -1 sluice_rollouts-"$version"* sluice-"$version".tgz install.yaml SHA256SUMS)
