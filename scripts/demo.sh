#!/usr/bin/env bash
# Sets up and simulates an example canary Rollout end to end: no cluster needed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/sluice simulate deploy/examples/canary-no-mesh.yaml "$@"
