#!/usr/bin/env bash
# Sets up and runs every check CI runs: lint, types, import contracts, CRDs in sync, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/system-deps.sh
.venv/bin/ruff check rollouts analysis simulations tests
.venv/bin/ruff format --check rollouts analysis
.venv/bin/mypy rollouts analysis
.venv/bin/lint-imports
# every core (pytest-xdist); whole files per worker keep module fixtures shared. Each worker has its
# own Prometheus, emulators and temp dirs (fixtures pick free ports). SLUICE_TEST_WORKERS=0: serial
exec .venv/bin/pytest -n "${SLUICE_TEST_WORKERS:-auto}" --dist loadfile "$@"
