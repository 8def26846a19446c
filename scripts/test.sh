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
exec .venv/bin/pytest "$@"
