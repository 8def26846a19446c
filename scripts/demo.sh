#!/usr/bin/env bash
# Sets up and simulates an example canary Rollout with real AnalysisRuns on simulated traffic
# end to end: no cluster needed. Extra arguments go to `sluice simulate` (e.g. --quiet).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/sluice simulate deploy/examples/canary-analysis.yaml --scenario healthy "$@"
