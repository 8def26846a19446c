"""API faults: the controller's requests fail at random (500, 503, 429, 409 on writes), answer
slowly or hang past its timeouts, watch streams are cut or carry ERROR events of any code, and
for a while everything answers 503 (a brownout). Rollouts must end as they would without faults,
the controller must keep running, and expected failures must not fill its log with tracebacks.

Only the controller's requests are faulted: the suite's own (marked with a header) are served
normally, so what it observes is the truth.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp.web

from tests.reliability.chaos import (
    KINDS,
    ChaosReport,
    Kind,
    _run_outcomes,
    push_traffic,
    rollout,
    template,
)
from tests.reliability.cluster import (
    SETTINGS,
    Cluster,
    ShortMemoryEmulator,
    cluster,
    controller_request,
    first_revisions,
)
from tests.support.kube import _status_body
from tests.support.prometheus import start_prometheus, unique_id

STATUSES = (500, 503, 429)


class FaultyEmulator(ShortMemoryEmulator):
    """Fails a share of the controller's requests; the knobs are set by the suite before use."""

    rate: float = 0.0
    slow_share: float = 0.1
    slow_seconds: tuple[float, float] = (1.0, 35.0)
    watch_fault_rate: float = 0.0
    brownout_until: float = 0.0
    rng: random.Random = random.Random(0)
    injected: Counter[str]

    def configure(self, *, seed: int, rate: float, watch_fault_rate: float) -> None:
        self.rng = random.Random(seed)
        self.rate = rate
        self.watch_fault_rate = watch_fault_rate
        self.injected = Counter()

    def _test_client(self, request: Any) -> bool:
        return not controller_request(request)

    async def _handle_one(self, request: Any) -> aiohttp.web.StreamResponse:
        """Inside the lean emulator's bookkeeping, so a faulted request is still counted."""
        if request.resource is None or self._test_client(request):
            return await super()._handle_one(request)
        watch = str(request.params.get("watch", "")).lower() in ("true", "1")
        if time.monotonic() < self.brownout_until and not watch:
            self.injected["brownout-503"] += 1
            return aiohttp.web.json_response(_status_body(503, "brownout"), status=503)
        if not watch and self.rng.random() < self.rate:
            if self.rng.random() < self.slow_share:
                delay = self.rng.uniform(*self.slow_seconds)
                self.injected["slow"] += 1
                await asyncio.sleep(delay)
                return await super()._handle_one(request)
            method = str(request.method.value).upper()
            codes = (*STATUSES, 409) if method in ("PATCH", "PUT") else STATUSES
            code = self.rng.choice(codes)
            self.injected[str(code)] += 1
            response = aiohttp.web.json_response(_status_body(code, "injected"), status=code)
            if code == 429:
                response.headers["Retry-After"] = "1"
            return response
        return await super()._handle_one(request)

    async def _serve_watch(self, request: Any) -> AsyncIterator[Any]:
        if self._test_client(request) or self.rng.random() >= self.watch_fault_rate:
            async for item in super()._serve_watch(request):
                yield item
            return
        cut_after = self.rng.uniform(0.5, 10.0)
        ends_with_error = self.rng.random() < 0.5
        started = time.monotonic()
        stream = super()._serve_watch(request)
        try:
            while True:
                left = cut_after - (time.monotonic() - started)
                if left <= 0:
                    break
                try:
                    item = await asyncio.wait_for(stream.__anext__(), timeout=left)
                except (TimeoutError, StopAsyncIteration):
                    break
                yield item
        finally:
            await stream.aclose()
        if ends_with_error:
            code = self.rng.choice((500, 503, 504))
            self.injected[f"watch-error-{code}"] += 1
            yield {"type": "ERROR", "object": _status_body(code, "injected watch error")}
        else:
            self.injected["watch-cut"] += 1


@dataclass
class FaultReport(ChaosReport):
    faults: dict[str, int] = field(default_factory=dict)
    tracebacks: int = 0
    log_lines: int = 0


def api_faults(
    count: int,
    seed: int,
    *,
    rate: float = 0.05,
    watch_fault_rate: float = 0.3,
    brownout_seconds: float = 20.0,
    settle_timeout: float = 300.0,
) -> FaultReport:
    rng = random.Random(seed)
    started = time.monotonic()
    report = FaultReport(rollouts=count)
    kinds: dict[str, Kind] = {f"a{seed}-{i}": KINDS[i % 3] for i in range(count)}
    report.with_analysis = sum(k != "plain" for k in kinds.values())
    test_id = unique_id("apifault")
    with (
        tempfile.TemporaryDirectory(prefix="sluice-apifault-prom-") as tmp,
        start_prometheus(Path(tmp)) as prom,
    ):
        push_traffic(prom, test_id, kinds, seconds=2 * settle_timeout + 300)
        with cluster(SETTINGS, FaultyEmulator, prometheus_url=prom.url) as c:
            emulator = c.emulator.emulator
            assert isinstance(emulator, FaultyEmulator)
            emulator.configure(seed=seed, rate=rate, watch_fault_rate=watch_fault_rate)
            _run(c, emulator, rng, kinds, test_id, report, brownout_seconds, settle_timeout)
            report.faults = dict(emulator.injected)
            c.controller.stop()
            log = c.controller.log_text()
            report.tracebacks = c.controller.tracebacks()
            report.log_lines = len(log.splitlines())
    report.seconds = time.monotonic() - started
    return report


def _run(
    c: Cluster,
    emulator: FaultyEmulator,
    rng: random.Random,
    kinds: dict[str, Kind],
    test_id: str,
    report: FaultReport,
    brownout_seconds: float,
    settle_timeout: float,
) -> None:
    c.create("analysistemplates", template(test_id))
    for name, kind in kinds.items():
        c.infrastructure(name)
        c.create("rollouts", rollout(name, kind))
    c.controller.start()
    rev1 = first_revisions(c, kinds, settle_timeout)
    for name in kinds:
        c.set_image(name, f"{name}:2")
    time.sleep(rng.uniform(2.0, 5.0))
    emulator.brownout_until = time.monotonic() + brownout_seconds
    _run_outcomes(c, kinds, rev1, report, settle_timeout + brownout_seconds)
    if c.controller.exited_by_itself():
        report.controller_exits += 1
