"""Quick API faults: random 500/503/429/409s, slow and hanging answers, cut watches and ERROR
events of any code, and a brownout; rollouts end as without faults, the controller never exits
and logs no traceback for an expected API error. Full run: ``python -m benchmarks.reliability
--suite api``."""

from __future__ import annotations

import pytest

from tests.reliability.api_faults import api_faults

pytestmark = pytest.mark.integration


def test_rollouts_converge_through_api_faults_without_exits_or_tracebacks() -> None:
    report = api_faults(9, seed=5, rate=0.05, watch_fault_rate=0.3, brownout_seconds=5)
    assert report.failures == []
    assert report.as_expected == report.rollouts == 9
    assert report.controller_exits == 0
    assert sum(report.faults.values()) > 0
    assert report.tracebacks == 0
