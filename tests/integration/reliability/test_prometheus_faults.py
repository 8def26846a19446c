"""Quick Prometheus faults: down, slow, NaN and empty answers never promote, under every
inconclusive policy and metric kind, and no rollout is left waiting; controls on the healthy
server promote. Full run: ``python -m benchmarks.reliability --suite prometheus``."""

from __future__ import annotations

import pytest

from tests.reliability.prometheus_faults import FAULTS, METRICS, POLICIES, prometheus_faults

pytestmark = pytest.mark.integration


def test_missing_or_bad_evidence_never_promotes() -> None:
    report = prometheus_faults(rounds=1)
    assert report.failures == []
    assert report.rollouts == len(FAULTS) * len(POLICIES) * len(METRICS)
    assert report.promoted == 0 and report.unresolved == 0
    assert report.controls == report.controls_promoted == len(POLICIES)
