"""Scale benchmark: the real controller against the emulator with 100 / 300 / 1,000 / 3,000 Rollouts.

    .venv/bin/python benchmarks/scale.py --sizes 100,300,1000 [--idle-seconds 90] [--aborts 200]
        [--shards N] [--rates 20,40,80] [--held-burst] [--pin]

``SLUICE_BENCH_PROFILE=FILE`` (with ``py-spy`` installed) samples the controller during the burst
into FILE (collapsed stacks, GIL holders only): where a Rollout's CPU goes;
``SLUICE_BENCH_PROFILE_PACED=FILE`` the same during the first paced rate,
``SLUICE_BENCH_PROFILE_IDLE=FILE`` during the idle window.
``SLUICE_BENCH_GC_LOG=PREFIX`` logs every garbage collection of the controller, the emulator and
this driver (``benchmarks/gc_log.py``) and reports those of the step phase;
``SLUICE_BENCH_SERIES=FILE`` writes each Rollout's update time, latency and pods' wait in the
step phase, so a slow second can be matched with a collection.

With ``--shards N`` the controller is N processes, each serving ``--shard I/N`` (CPU summed over
them, RSS the largest one's).

With ``--pin`` the driver and the emulator run on the first core and each controller process on
a core of its own (round robin over the rest): on a 2-core machine, what a machine with more
cores shows, where the controller no longer competes with the API server for CPU and its own
CPU time per Rollout alone sets the rate it keeps up with.

Three processes, so CPU is measured apart: the emulator (``tests.support.kube.SluiceEmulator``
with ``lean=True``: no request history, objects looked up by key; kmock 0.8 otherwise re-scans
every request it served on each new one), the controller (``rollouts.operator.run`` with
``sluice run``'s default settings, standalone, serving one namespace), and this driver, which
plays the Deployment controller (marks slot Deployments ready) and the user. The emulator and
the driver freeze their heaps once the fleet exists (``settle_heap``): their full collections
otherwise paused them for 0.1-0.4 s at a time, in the controller's figures.

Each Rollout is an Istio canary (steps: setWeight 20, pause until promoted) over its own two
Services and VirtualService. Figures per size:

- step apply: all Rollouts get a new image at once (one after another, as fast as the emulator
  takes them); from each one's update to the first weight (20) in its VirtualService, seen by a
  watch (p50 / p99). The emulator shares the cores, so it takes updates only as fast as its
  share of the CPU allows, and a controller that keeps up sees them spread over that time. With
  ``--held-burst`` the controller is stopped (SIGSTOP) while every update is sent and continued
  after, and each latency counts from that moment: the whole fleet's change at once, as from an
  API server that took the updates faster than the controller works (its throughput);
- abort: ``sluice.dev/request: abort@...`` on ``--aborts`` paused Rollouts, 20 a second, to
  weight 0 in the VirtualService (p50 / p99);
- paced step apply: the aborted Rollouts get a new revision each, 20 a second (a GitOps tool
  syncing a fleet), with the rest of the fleet present: update to the first weight (p50 / p99);
  with ``--rates``, again at each further rate over the next slice of ``--aborts`` Rollouts, so
  the highest rate one process sustains (p99 < 1 s) is measured;
- API calls per reconcile during the step phase (emulator counts / the controller's
  ``sluice_reconcile_duration_seconds_count``);
- idle: requests per second over ``--idle-seconds`` once every Rollout is settled, the
  controller's CPU share (and the emulator's, apart) and RSS.

Each step apply latency is also split in two: the pods' wait (from the driver seeing the new
slot Deployment to its marking it ready: what pods starting would take) and the rest, the
controller's part. And each run prints the share of the cores the hypervisor stole (``steal`` in
/proc/stat): on a shared virtual machine every process here slows alike, the figures with it.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import multiprocessing as mp
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.gc_log import log_collections, pauses  # noqa: E402
from rollouts.gc_tuning import tune_gc  # noqa: E402

NS = "bench"
GROUP, VERSION = "sluice.dev", "v1alpha1"
ISTIO = ("networking.istio.io", "v1beta1", "virtualservices")
TICKS = os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------------ processes


def settle_heap() -> None:
    """The harness's own processes (this driver, the emulator) keep every object of the fleet,
    and Python's full collections walk them all. Measured at 1,000 (``SLUICE_BENCH_GC_LOG``),
    the driver made 17 full collections of 0.06-0.36 s each while it created the fleet, and one
    in the burst, the emulator 5 of 0.06-0.2 s: pauses of the API server and the Deployment
    controller that landed in the controller's figures. A real API server collects
    concurrently (Go), so once the fleet exists the harness freezes it out of the collector's
    walks (both processes took ``tune_gc``'s thresholds when they started)."""
    gc.collect()
    gc.freeze()


def _emulator_main(conn: Connection) -> None:
    from tests.support.kube import start_emulator

    log_collections("emulator")
    tune_gc()

    running = start_emulator(lean=True)
    conn.send(running.url)
    while True:
        command = conn.recv()
        if command == "counts":
            out: dict[str, int] = {}
            for call, count in list(running.emulator.call_counts.items()):
                sub = f"/{call.subresource}" if call.subresource else ""
                what = " watch" if call.watch else (" list" if not call.name else "")
                key = f"{call.method} {call.plural}{sub}{what}"
                out[key] = out.get(key, 0) + count
            conn.send(out)
        elif command == "freeze":
            settle_heap()
            conn.send("frozen")
        elif command == "stop":
            running.stop()
            conn.send("stopped")
            return


CONTROLLER = """
import asyncio, logging, sys
from rollouts.cli.run_controller import configure_logging
from rollouts.operator import EXIT_GRACE_SECONDS, run
from rollouts.settings import Settings
from rollouts.gc_tuning import tune_gc
configure_logging("text", False)
tune_gc()  # as `sluice run` does
from benchmarks.gc_log import log_collections
log_collections(f"controller-{sys.argv[1]}")
logging.getLogger("kopf").setLevel(logging.WARNING)
from rollouts.sharding import Shard
shard = Shard.parse(sys.argv[3]) if len(sys.argv) > 3 else None
settings = Settings(namespaces=("bench",), standalone=True, liveness_port=None,
                    metrics_port=int(sys.argv[1]), workers=int(sys.argv[2]), shard=shard)
asyncio.run(run(settings, exit_grace_seconds=EXIT_GRACE_SECONDS))
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def stolen_seconds() -> float:
    """CPU time the hypervisor gave other machines while this one's processes wanted it (the
    ``steal`` column of /proc/stat, summed over cores): on a shared virtual machine it slows
    every process here alike, and the figures with it."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    return int(fields[8]) / TICKS if len(fields) > 8 else 0.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Controllers:
    """One controller process, or one per shard (``--shards N``: each runs ``--shard I/N``);
    CPU and reconciles are summed over them, RSS is the largest one's."""

    def __init__(
        self,
        env: dict[str, str],
        shards: int,
        cores: list[set[int]] | None = None,
        workers: int = 20,
    ) -> None:
        self.ports = [free_port() for _ in range(shards)]
        self.procs = [
            subprocess.Popen(
                [sys.executable, "-c", CONTROLLER, str(port), str(workers)]
                + ([f"{i}/{shards}"] if shards > 1 else []),
                env=env,
                cwd=ROOT,
            )
            for i, port in enumerate(self.ports)
        ]
        for i, p in enumerate(self.procs):  # --pin: each shard on its cores, apart from the rest
            if cores:
                os.sched_setaffinity(p.pid, cores[i % len(cores)])

    def cpu(self) -> float:
        return sum(cpu_seconds(p.pid) for p in self.procs)

    def rss(self) -> float:
        return max(rss_mb(p.pid) for p in self.procs)

    def metric(self, name: str) -> float:
        return sum(metric(port, name) for port in self.ports)

    def hold(self, held: bool) -> None:
        """Stop (SIGSTOP) or continue (SIGCONT) every controller process."""
        for p in self.procs:
            os.kill(p.pid, signal.SIGSTOP if held else signal.SIGCONT)

    def stop(self) -> int | None:
        for p in self.procs:
            p.terminate()
        codes = []
        for p in self.procs:
            try:
                codes.append(p.wait(timeout=20))
            except subprocess.TimeoutExpired:
                p.kill()
                codes.append(p.wait())
        return max(codes, key=abs)


def metric(port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


# ------------------------------------------------------------------------------ objects


def rollout_doc(i: int) -> dict[str, Any]:
    name = f"r{i}"
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Rollout",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "app:1"}]},
            },
            "strategy": {
                "canary": {
                    "stableService": name,
                    "canaryService": f"{name}-canary",
                    "scaleDownDelaySeconds": 0,
                    "abortScaleDownDelaySeconds": 0,
                    "trafficRouting": {"istio": {"virtualService": {"name": name}}},
                    "steps": [{"setWeight": 20}, {"pause": {}}],
                }
            },
        },
    }


def create_fleet(api: Any, n: int) -> None:
    import kubernetes

    core = kubernetes.client.CoreV1Api(api)
    custom = kubernetes.client.CustomObjectsApi(api)
    for i in range(n):
        name = f"r{i}"
        for svc in (name, f"{name}-canary"):
            core.create_namespaced_service(
                NS,
                {
                    "metadata": {"name": svc, "namespace": NS},
                    "spec": {"selector": {"app": name}, "ports": [{"port": 80}]},
                },
            )
        custom.create_namespaced_custom_object(
            *ISTIO[:2],
            NS,
            ISTIO[2],
            {
                "apiVersion": "networking.istio.io/v1beta1",
                "kind": "VirtualService",
                "metadata": {"name": name, "namespace": NS},
                "spec": {
                    "hosts": [name],
                    "http": [
                        {
                            "route": [
                                {"destination": {"host": name}, "weight": 100},
                                {"destination": {"host": f"{name}-canary"}, "weight": 0},
                            ]
                        }
                    ],
                },
            },
        )
        custom.create_namespaced_custom_object(GROUP, VERSION, NS, "rollouts", rollout_doc(i))


class Watcher:
    """A watch in a thread calling ``on(event_type, object)`` until stopped."""

    def __init__(self, api: Any, path: tuple[str, ...], on: Callable[[str, Any], None]) -> None:
        self.api, self.path, self.on = api, path, on
        self.stopped = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        import kubernetes

        # a restart continues from the last event seen: replaying every object again (2,000
        # Deployments at 1,000 Rollouts) held the driver's events for seconds and showed as
        # controller latency when it fell in a measured phase
        since: dict[str, str] = {}
        while not self.stopped:
            watch = kubernetes.watch.Watch()
            try:
                if self.path[0] == "deployments":
                    fn: Any = kubernetes.client.AppsV1Api(self.api).list_namespaced_deployment
                    stream = watch.stream(fn, NS, timeout_seconds=60, **since)
                else:
                    custom = kubernetes.client.CustomObjectsApi(self.api)
                    stream = watch.stream(
                        custom.list_namespaced_custom_object,
                        *self.path[:2],
                        NS,
                        self.path[2],
                        timeout_seconds=60,
                        **since,
                    )
                for event in stream:
                    if self.stopped:
                        break
                    self.on(event["type"], event["object"])
                    if watch.resource_version:
                        since = {"resource_version": watch.resource_version}
            except Exception as e:  # restart the watch
                print(f"  (driver watch {self.path[-1]} restarted: {e})", file=sys.stderr)
                time.sleep(0.5)


class Readiness(NamedTuple):
    """When the driver, playing the Deployment controller, saw a slot Deployment's generation
    and when it marked it ready: a Rollout's wait for its pods, not the controller's work."""

    generation: int
    seen: float
    marked: float


def keep_ready(api: Any) -> tuple[Watcher, dict[str, Readiness]]:
    """Play the Deployment controller: every slot Deployment is ready at its generation. Also
    returns, by Deployment, when its last generation was seen and marked ready."""
    import kubernetes

    apps = kubernetes.client.AppsV1Api(api)
    work: list[tuple[str, int, int, float]] = []
    cv = threading.Condition()
    marks: dict[str, Readiness] = {}

    def on(kind: str, dep: Any) -> None:
        if kind == "DELETED":
            return
        replicas = dep.spec.replicas or 0
        st = dep.status
        gen = dep.metadata.generation or 1
        if st is None or st.ready_replicas != replicas or st.observed_generation != gen:
            with cv:
                work.append((dep.metadata.name, replicas, gen, time.monotonic()))
                cv.notify()

    def patcher() -> None:
        while True:
            with cv:
                while not work:
                    cv.wait()
                name, replicas, gen, seen = work.pop(0)
            status = {
                "observedGeneration": gen,
                "replicas": replicas,
                "updatedReplicas": replicas,
                "readyReplicas": replicas,
                "availableReplicas": replicas,
            }
            try:
                apps.patch_namespaced_deployment_status(
                    name,
                    NS,
                    {"status": status},
                    _content_type="application/merge-patch+json",
                )
            except Exception as e:
                print(f"  (ready {name}: {e})", file=sys.stderr)
                continue
            with cv:
                last = marks.get(name)
                if last is None or last.generation != gen or last.seen > seen:
                    marks[name] = Readiness(gen, seen, time.monotonic())

    for _ in range(2):
        threading.Thread(target=patcher, daemon=True).start()
    return Watcher(api, ("deployments",), on), marks


def pod_waits(marks: dict[str, Readiness], since: dict[str, float]) -> dict[str, float]:
    """Each Rollout's wait between its new slot Deployment being seen and marked ready (the
    driver's share of its latency; its slots are ``<name>-<slot>``, as the controller names
    them)."""
    from rollouts.cluster.kube import SLOTS

    out: dict[str, float] = {}
    for name, t in since.items():
        waits = [
            m.marked - m.seen
            for slot in SLOTS
            if (m := marks.get(f"{name}-{slot}")) is not None and m.seen >= t
        ]
        if waits:
            out[name] = max(waits)
    return out


def write_series(
    path: Path, started: dict[str, float], lat: list[float], waits: dict[str, float]
) -> None:
    """One line per Rollout of the step phase: its update (Unix time), latency and pods' wait,
    in the order sent; with ``SLUICE_BENCH_GC_LOG``, a slow second lines up with a collection
    or not."""
    now, mono = time.time(), time.monotonic()
    with path.open("w") as out:
        for (name, at), x in zip(started.items(), lat, strict=True):
            out.write(f"{now - (mono - at):.3f} {x:.3f} {waits.get(name, math.nan):.3f}\n")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def split(lat: list[float], since: dict[str, float], marks: dict[str, Readiness]) -> dict[str, Any]:
    """The latencies' two parts: the pods' wait (the driver, seen to marked ready) and the rest,
    the controller's (its two reconciles and the watch events between them)."""
    waits = pod_waits(marks, since)
    own = [x - waits[name] for name, x in zip(since, lat, strict=True) if name in waits]
    if not own:
        return {}
    return {"pod_wait": latencies(list(waits.values())), "controller_part": latencies(own)}


def latencies(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(values, 0.5), 3),
        "p99": round(percentile(values, 0.99), 3),
        "max": round(max(values), 3),
    }


def wait(check: Callable[[], bool], timeout: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.5)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def poisson_upper(count: float, seconds: float) -> float:
    """Upper 95% bound of a Poisson rate seen as ``count`` events in ``seconds``."""
    from scipy.stats import chi2

    return float(chi2.ppf(0.975, 2 * (count + 1)) / 2 / seconds)


# ---------------------------------------------------------------------------------- run


@contextlib.contextmanager
def profiled(controllers: Controllers, out: str | None) -> Iterator[None]:
    """With an output FILE (``SLUICE_BENCH_PROFILE``, ``SLUICE_BENCH_PROFILE_PACED``), sample the
    (first) controller with py-spy while inside, GIL holders only, collapsed stacks into FILE:
    where a Rollout's CPU goes. Without one, nothing."""
    if not out:
        yield
        return
    spy = shutil.which("py-spy", path=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    if spy is None:
        raise SystemExit("profiling needs py-spy: .venv/bin/pip install py-spy")
    command = [spy, "record", "--pid", str(controllers.procs[0].pid), "--gil", "--rate", "200"]
    proc = subprocess.Popen(
        [*command, "--format", "raw", "--output", out, "--nonblocking"],
        stdout=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        proc.wait()


def run_size(
    n: int,
    idle_seconds: float,
    aborts: int,
    shards: int = 1,
    rates: tuple[float, ...] = (20,),
    held_burst: bool = False,
    pin: bool = False,
    workers: int = 20,
) -> dict[str, Any]:
    import kubernetes

    from tests.support.kube import write_kubeconfig

    everything = sorted(os.sched_getaffinity(0))
    controller_cores: list[set[int]] | None = None
    if pin:  # this driver and the emulator (spawned next, inheriting it) on the first core
        if len(everything) < 2:
            raise SystemExit("--pin needs at least two cores")
        os.sched_setaffinity(0, {everything[0]})
        controller_cores = [{c} for c in everything[1:]]
    parent, child = mp.Pipe()
    emulator = mp.get_context("spawn").Process(target=_emulator_main, args=(child,), daemon=True)
    emulator.start()
    url = parent.recv()
    tmp = Path(tempfile.mkdtemp())
    kubeconfig = write_kubeconfig(tmp / "kubeconfig", url, NS)
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "NO_PROXY": "127.0.0.1,localhost"}
    api = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))
    api.configuration.connection_pool_maxsize = 8
    custom = kubernetes.client.CustomObjectsApi(api)

    def counts() -> dict[str, int]:
        parent.send("counts")
        out: dict[str, int] = parent.recv()
        return out

    weights: dict[str, tuple[int, float]] = {}  # VirtualService -> (canary weight, when seen)
    seen = threading.Condition()

    def on_vs(kind: str, vs: Any) -> None:
        if kind == "DELETED":
            return
        route = ((vs.get("spec") or {}).get("http") or [{}])[0].get("route") or []
        w = route[1].get("weight") if len(route) > 1 else None
        with seen:
            if weights.get(vs["metadata"]["name"], (None,))[0] != w:
                weights[vs["metadata"]["name"]] = (w, time.monotonic())
                seen.notify_all()

    result: dict[str, Any] = {
        "rollouts": n,
        "shards": shards,
        "workers": workers,
        "pinned": [sorted(c) for c in controller_cores] if controller_cores else None,
    }
    t0 = time.monotonic()
    create_fleet(api, n)
    result["create_seconds"] = round(time.monotonic() - t0, 1)
    ready, marks = keep_ready(api)
    vs_watch = Watcher(api, ISTIO, on_vs)
    controllers = Controllers(env, shards, controller_cores, workers)
    try:

        def phases() -> dict[str, int]:
            items = custom.list_namespaced_custom_object(GROUP, VERSION, NS, "rollouts")["items"]
            out: dict[str, int] = {}
            for item in items:
                phase = (item.get("status") or {}).get("phase", "none")
                out[phase] = out.get(phase, 0) + 1
            return out

        def patch_rollout(name: str, body: dict[str, Any]) -> None:
            custom.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                NS,
                "rollouts",
                name,
                body,
                _content_type="application/merge-patch+json",
            )

        def set_image(name: str, image: str) -> None:
            patch_rollout(
                name,
                {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}},
            )

        def reached(weight: int, since: dict[str, float], what: str, timeout: float) -> list[float]:
            """Wait until each VirtualService shows ``weight`` after its ``since``; the delays."""

            def done() -> bool:
                with seen:
                    return all(
                        weights.get(x, (None, 0.0))[0] == weight and weights[x][1] >= since[x]
                        for x in since
                    )

            wait(done, timeout, what)
            with seen:
                return [weights[x][1] - since[x] for x in since]

        settle = wait(lambda: phases().get("Healthy", 0) == n, 120 + n * 2.0, "all Healthy")
        settle_heap()
        parent.send("freeze")
        parent.recv()
        result["first_settle_seconds"] = round(settle, 1)

        # ---------------------------------------------------------------- idle
        time.sleep(5)
        c0, cpu0, ecpu0, t0 = (
            counts(),
            controllers.cpu(),
            cpu_seconds(emulator.pid or 0),
            time.monotonic(),
        )
        with profiled(controllers, os.environ.get("SLUICE_BENCH_PROFILE_IDLE")):
            time.sleep(idle_seconds)
        c1, cpu1, ecpu1, t1 = (
            counts(),
            controllers.cpu(),
            cpu_seconds(emulator.pid or 0),
            time.monotonic(),
        )
        idle_calls = {k: c1.get(k, 0) - c0.get(k, 0) for k in c1 if c1.get(k, 0) != c0.get(k, 0)}
        total = sum(idle_calls.values())
        result["idle"] = {
            "seconds": round(t1 - t0, 1),
            "requests": total,
            "requests_per_second": round(total / (t1 - t0), 3),
            "requests_per_second_upper95": round(poisson_upper(total, t1 - t0), 3),
            "calls": idle_calls,
            "controller_cpu_share": round((cpu1 - cpu0) / (t1 - t0), 4),
            "emulator_cpu_share": round((ecpu1 - ecpu0) / (t1 - t0), 4),
            "controller_rss_mb": round(controllers.rss(), 1),
        }

        # ---------------------------------------------------------------- step apply
        reconciles0 = controllers.metric("sluice_reconcile_duration_seconds_count")
        s0, cpu0, ecpu0 = counts(), controllers.cpu(), cpu_seconds(emulator.pid or 0)
        started: dict[str, float] = {}
        t_step, driver0, steal0 = time.monotonic(), time.process_time(), stolen_seconds()
        if held_burst:  # every update is in the API server before the controller sees one
            controllers.hold(True)
        with profiled(controllers, os.environ.get("SLUICE_BENCH_PROFILE")):
            for i in range(n):
                name = f"r{i}"
                started[name] = time.monotonic()
                set_image(name, "app:2")
            result["step_updates_sent_seconds"] = round(time.monotonic() - t_step, 1)
            if held_burst:
                time.sleep(1.0)  # the emulator has streamed the events to the held watches
                t_step = time.monotonic()
                started = dict.fromkeys(started, t_step)
                controllers.hold(False)
            lat = reached(20, started, "every first weight step", 120 + n * 2.0)
        burst_collections = {
            tag: pauses(tag, time.time() - (time.monotonic() - t_step), time.time())
            for tag in ("controller", "emulator", "driver")
        }
        if series := os.environ.get("SLUICE_BENCH_SERIES"):
            write_series(Path(series), started, lat, pod_waits(marks, started))
        # the machine's budget up to the last first weight: every process's CPU against the cores
        # (the driver is this process: the user's updates and the Deployment controller's work)
        wall = time.monotonic() - t_step
        spent = {
            "controller": controllers.cpu() - cpu0,
            "emulator": cpu_seconds(emulator.pid or 0) - ecpu0,
            "driver": time.process_time() - driver0,
        }
        cores = os.cpu_count() or 1
        budget = {
            "seconds": round(wall, 1),
            "cores": cores,
            **{f"{k}_cpu_seconds": round(v, 1) for k, v in spent.items()},
            "busy_share": round(sum(spent.values()) / (cores * wall), 3),
            "stolen_share": round((stolen_seconds() - steal0) / (cores * wall), 3),
        }
        wait(lambda: phases().get("Paused", 0) == n, 120 + n * 1.0, "all Paused")
        time.sleep(2)
        s1 = counts()
        reconciles = controllers.metric("sluice_reconcile_duration_seconds_count") - reconciles0
        step_calls = {k: s1.get(k, 0) - s0.get(k, 0) for k in s1 if s1.get(k, 0) != s0.get(k, 0)}
        driver = ("PATCH rollouts", "PATCH deployments/status", "GET rollouts list")
        controller_calls = sum(v for k, v in step_calls.items() if k not in driver)
        result["step"] = {
            "held_burst": held_burst,
            "collections": {
                tag: {gen: p._asdict() for gen, p in by_gen.items()}
                for tag, by_gen in burst_collections.items()
                if by_gen
            },
            **latencies(lat),
            **split(lat, started, marks),
            "reconciles": int(reconciles),
            "controller_api_calls": controller_calls,
            "api_calls_per_reconcile": round(controller_calls / max(reconciles, 1), 2),
            "calls": step_calls,
            "controller_cpu_seconds": round(controllers.cpu() - cpu0, 1),
            "emulator_cpu_seconds": round(cpu_seconds(emulator.pid or 0) - ecpu0, 1),
            "until_last_first_weight": budget,
        }

        # ---------------------------------------------------------------- abort
        k = min(aborts, n)
        asked: dict[str, float] = {}
        for i in range(k):
            name = f"r{i}"
            asked[name] = time.monotonic()
            patch_rollout(
                name, {"metadata": {"annotations": {"sluice.dev/request": f"abort@bench{i}"}}}
            )
            time.sleep(max(0.0, asked[name] + 0.05 - time.monotonic()))

        alat = reached(0, asked, "every abort at weight 0", 120 + 2 * k)
        result["abort"] = {
            "count": k,
            "rate_per_second": 20,
            **latencies(alat),
        }

        # ---------------------------------------------------------------- paced step apply
        # The aborted Rollouts (weight 0, Degraded) get a new revision each, at a steady rate
        # (the pace of a GitOps tool syncing a fleet): update -> first weight (20), with every
        # other Rollout of the fleet present and paused. With --rates R1,R2,..., each further
        # rate takes the next slice of the fleet (aborted first, unmeasured): the highest rate
        # whose p99 stays under a second is what one process sustains, measured, not derived.
        def abort_quietly(names: list[str], tag: str) -> None:
            for name in names:
                patch_rollout(
                    name, {"metadata": {"annotations": {"sluice.dev/request": f"abort@{tag}"}}}
                )
            wanted = set(names)

            def degraded() -> bool:
                items = custom.list_namespaced_custom_object(GROUP, VERSION, NS, "rollouts")
                done = {
                    i["metadata"]["name"]
                    for i in items["items"]
                    if (i.get("status") or {}).get("phase") == "Degraded"
                }
                return wanted <= done

            wait(degraded, 120 + 2 * len(names), "every Rollout of the slice Degraded")

        wait(
            lambda: sum(p for ph, p in phases().items() if ph == "Degraded") >= k,
            120 + 2 * k,
            "every aborted Rollout Degraded",
        )
        result["paced_steps"] = []
        for j, rate in enumerate(rates):
            if (j + 1) * k > n:
                print(f"  (rate {rate}/s skipped: the fleet has no slice of {k} left)")
                break
            names = [f"r{i}" for i in range(j * k, (j + 1) * k)]
            if j > 0:
                abort_quietly(names, f"slice{j}")
            paced: dict[str, float] = {}
            cpu0, t0 = controllers.cpu(), time.monotonic()
            c0 = counts()
            reconciles0 = controllers.metric("sluice_reconcile_duration_seconds_count")
            out = os.environ.get("SLUICE_BENCH_PROFILE_PACED") if j == 0 else None
            with profiled(controllers, out):
                for name in names:
                    paced[name] = time.monotonic()
                    set_image(name, f"app:{3 + j}")
                    time.sleep(max(0.0, paced[name] + 1.0 / rate - time.monotonic()))
                # the rate achieved: an update waits for the emulator's answer, so on a machine
                # it shares, the driver may not reach the rate asked for
                sent = k / max(time.monotonic() - t0, 1e-9)
                plat = reached(20, paced, f"every first weight step at {rate}/s", 120 + 2 * k)
            c1 = counts()
            calls = {
                key: c1.get(key, 0) - c0.get(key, 0)
                for key in c1
                if c1.get(key, 0) != c0.get(key, 0) and key not in driver
            }
            paced_reconciles = (
                controllers.metric("sluice_reconcile_duration_seconds_count") - reconciles0
            )
            result["paced_steps"].append(
                {
                    "count": k,
                    "rate_per_second": rate,
                    "sent_per_second": round(sent, 1),
                    **latencies(plat),
                    **split(plat, paced, marks),
                    "controller_cpu_seconds": round(controllers.cpu() - cpu0, 1),
                    "controller_cpu_share": round(
                        (controllers.cpu() - cpu0) / (time.monotonic() - t0), 3
                    ),
                    "reconciles_per_rollout": round(paced_reconciles / k, 2),
                    "api_calls_per_rollout": round(sum(calls.values()) / k, 2),
                    "calls": calls,
                }
            )
        result["paced_step"] = result["paced_steps"][0]
        result["controller_rss_mb_end"] = round(controllers.rss(), 1)
    finally:
        result["controller_exit_code"] = controllers.stop()
        ready.stopped = vs_watch.stopped = True
        parent.send("stop")
        parent.recv()
        emulator.join(timeout=10)
        api.close()
        os.sched_setaffinity(0, everything)
    return result


def parts(figures: dict[str, Any]) -> str:
    if "controller_part" not in figures:
        return ""
    own, pods = figures["controller_part"], figures["pod_wait"]
    return (
        f" (of which the controller's part p50 {own['p50']} s, p99 {own['p99']} s, max "
        f"{own['max']} s; the pods' wait, the driver marking them ready, p99 {pods['p99']} s)"
    )


def collections_line(step: dict[str, Any]) -> str:
    """The garbage collections during the step phase, per process (with SLUICE_BENCH_GC_LOG)."""
    if not step.get("collections"):
        return ""
    return "\n  collections until the last first weight: " + "; ".join(
        f"{tag} "
        + ", ".join(
            f"{gen} x{p['count']} (longest {p['longest']:.3f} s, {p['cpu']:.2f} s CPU)"
            for gen, p in by_gen.items()
        )
        for tag, by_gen in step["collections"].items()
    )


def main() -> None:
    log_collections("driver")
    tune_gc()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100,300,1000")
    parser.add_argument(
        "--idle-seconds",
        type=float,
        default=90.0,
        help="the idle window; it must be longer than the controller's drift re-check "
        "(idle_seconds, 60 s by default), else it can fall between the re-checks and show no CPU",
    )
    parser.add_argument("--aborts", type=int, default=200)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--shards", type=int, default=1, help="controller processes, one per shard (--shard I/N)"
    )
    parser.add_argument(
        "--rates",
        default="20",
        help="new revisions per second of the paced phase; each further rate takes the next "
        "slice of --aborts Rollouts (e.g. 20,40,80: the fastest with p99 < 1 s is sustained)",
    )
    parser.add_argument(
        "--held-burst",
        action="store_true",
        help="step apply: the controller is stopped (SIGSTOP) while every update is sent and "
        "continued after; latencies from that moment (the whole fleet's change at once, however "
        "fast the API server takes updates)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=20,
        help="each controller process's reconcile threads (sluice run --workers; 20 by default)",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="the driver and the emulator on the first core, each controller process on a core "
        "of its own (round robin over the rest): as on a machine where the API server has cores "
        "of its own",
    )
    args = parser.parse_args()
    from rollouts.settings import Settings

    recheck = Settings().idle_seconds
    if args.idle_seconds <= recheck:
        print(
            f"Note: an idle window of {args.idle_seconds:g} s is not longer than the drift "
            f"re-check ({recheck:g} s): the idle CPU may read low."
        )
    print(
        "Emulator: tests.support.kube.SluiceEmulator(lean=True) in its own process "
        "(no request history, objects looked up by key); controller: rollouts.operator.run "
        "with sluice run's defaults (standalone, one namespace) in its own process."
    )
    steal0, t0 = stolen_seconds(), time.monotonic()
    time.sleep(2.0)
    steal = (stolen_seconds() - steal0) / ((os.cpu_count() or 1) * (time.monotonic() - t0))
    print(
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load average at start {os.getloadavg()[0]:.2f}, {steal * 100:.0f}% of the cores "
        "stolen by the hypervisor over 2 s at start"
    )
    results = []
    for n in (int(x) for x in args.sizes.split(",")):
        rates = tuple(float(x) for x in args.rates.split(","))
        r = run_size(
            n,
            args.idle_seconds,
            args.aborts,
            args.shards,
            rates,
            args.held_burst,
            args.pin,
            args.workers,
        )
        results.append(r)
        idle, step, abort = r["idle"], r["step"], r["abort"]
        budget = step["until_last_first_weight"]
        print(
            f"\n{n} Rollouts, {args.shards} controller process(es)"
            f"{' pinned to cores ' + str(r['pinned']) if r['pinned'] else ''} (created in {r['create_seconds']} s, first settle "
            f"{r['first_settle_seconds']} s)\n"
            f"  step apply ({'all updates held, controller continued' if step['held_burst'] else 'update'}"
            f" -> weight 20): p50 {step['p50']} s, p99 {step['p99']} s, "
            f"max {step['max']} s{parts(step)}\n"
            f"  abort ({abort['count']} at {abort['rate_per_second']}/s -> weight 0): "
            f"p50 {abort['p50']} s, p99 {abort['p99']} s, max {abort['max']} s\n"
            f"  API calls per reconcile (step phase): {step['api_calls_per_reconcile']} "
            f"({step['controller_api_calls']} calls / {step['reconciles']} reconciles)\n"
            f"  idle: {idle['requests_per_second']} requests/s (upper 95% "
            f"{idle['requests_per_second_upper95']}) over {idle['seconds']} s; controller CPU "
            f"{idle['controller_cpu_share'] * 100:.1f}% of a core, emulator CPU "
            f"{idle['emulator_cpu_share'] * 100:.1f}%; controller RSS "
            f"{idle['controller_rss_mb']} MB (end {r['controller_rss_mb_end']} MB)\n"
            f"  step phase CPU: controller {step['controller_cpu_seconds']} s "
            f"({1000 * step['controller_cpu_seconds'] / n:.0f} ms per Rollout), emulator "
            f"{step['emulator_cpu_seconds']} s; updates sent in {r['step_updates_sent_seconds']} s\n"
            f"  until the last first weight ({budget['seconds']} s): CPU controller "
            f"{budget['controller_cpu_seconds']} s, emulator {budget['emulator_cpu_seconds']} s, "
            f"driver {budget['driver_cpu_seconds']} s: {budget['busy_share'] * 100:.0f}% of "
            f"{budget['cores']} cores busy, {budget['stolen_share'] * 100:.0f}% stolen by the "
            "hypervisor" + collections_line(step)
        )
        for paced in r["paced_steps"]:
            print(
                f"  paced step apply ({paced['count']} at {paced['rate_per_second']:g}/s, sent at "
                f"{paced.get('sent_per_second', '?')}/s, the "
                f"fleet present -> weight 20): p50 {paced['p50']} s, p99 {paced['p99']} s, "
                f"max {paced['max']} s{parts(paced)}; controller CPU {paced['controller_cpu_share'] * 100:.0f}%"
                f" of a core, {paced['reconciles_per_rollout']} reconciles and "
                f"{paced['api_calls_per_rollout']} API calls per Rollout"
            )
            print("    calls:", json.dumps(paced["calls"]))
        print("  idle calls:", json.dumps(idle["calls"]))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
