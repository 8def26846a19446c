"""What plain kubectl shows of a Rollout, checked on every version the API server holds.

The emulator does no server-side Table printing, and a kubectl run shows only the versions it
happens to poll, so the two kubectl features the docs promise are evaluated here, on every
version, from the same inputs kubectl uses (test_real_kubectl.py runs the real kubectl too):

- ``kubectl get sro -w`` prints one row per watch event, each cell being a printer column's
  JSONPath (from the generated CRD file) evaluated on the object;
- ``kubectl wait --for=condition=Ready`` applies kubectl's ``ConditionalWait.checkCondition``
  (kubernetes staging/src/k8s.io/kubectl/pkg/cmd/wait/condition.go), mirrored by
  :func:`kubectl_wait_condition`; ``--for=jsonpath=...=VALUE`` compares the value only
  (wait/json.go), mirrored by :func:`kubectl_wait_jsonpath`.

The ``recorder`` sees each write as one watch event, as kubectl does, so "never" below means
"in no version the API server ever held", not "in none of the polls that happened to run".
"""

from __future__ import annotations

import re
from itertools import groupby
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.kube import create_rollout

from .conftest import OperatorHarness, Recorder, canary, healthy

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
CRDS = ROOT / "crds"
SIMPLE_PATH = re.compile(r"^(\.[A-Za-z][A-Za-z0-9]*)+$")
"""The only JSONPath form :func:`column` evaluates: ``.status.weights.canary``."""


def printer_columns(crd_file: str = "sluice.dev_rollouts.yaml") -> list[dict[str, Any]]:
    crd = yaml.safe_load((CRDS / crd_file).read_text(encoding="utf-8"))
    [version] = [v for v in crd["spec"]["versions"] if v.get("served")]
    return list(version["additionalPrinterColumns"])


def column(obj: dict[str, Any], json_path: str) -> Any:
    """A printer column's cell: the value at a ``.a.b.c`` path, ``None`` (printed empty) if absent."""
    assert SIMPLE_PATH.match(json_path), json_path
    value: Any = obj
    for key in json_path.split(".")[1:]:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


COLUMNS = printer_columns()


def row(obj: dict[str, Any]) -> dict[str, Any]:
    """What ``kubectl get sro -o wide`` prints for ``obj``, column by column."""
    return {c["name"]: column(obj, c["jsonPath"]) for c in COLUMNS}


def kubectl_wait_condition(obj: dict[str, Any], name: str, want: str = "True") -> bool:
    """kubectl's ``ConditionalWait.checkCondition``: the first condition of that type (case
    folded) decides; if ``metadata.generation`` is set and the condition's ``observedGeneration``
    (else ``status.observedGeneration``) is lower, the condition is stale and not met."""
    status = obj.get("status") or {}
    for cond in status.get("conditions") or []:
        if str(cond.get("type", "")).casefold() != name.casefold() or "status" not in cond:
            continue
        generation = obj["metadata"].get("generation")
        if generation is not None:
            observed = cond.get("observedGeneration")
            if observed is None:
                observed = status.get("observedGeneration")
            if observed is not None and observed < generation:
                return False
        return bool(str(cond["status"]).casefold() == want.casefold())
    return False


def kubectl_wait_jsonpath(obj: dict[str, Any], json_path: str, want: str) -> bool:
    """kubectl's ``JSONPathWait.checkCondition``: the value alone, no generation check."""
    value = column(obj, json_path)
    return value is not None and str(value).strip() == want.strip()


def ready(obj: dict[str, Any]) -> dict[str, Any]:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next(c for c in conditions if c["type"] == "Ready")


def cells(obj: dict[str, Any]) -> tuple[Any, Any, Any]:
    r = row(obj)
    return r["Phase"], r["Step"], r["Weight"]


async def roll_out_web2(h: OperatorHarness) -> tuple[str, str]:
    """web:1 settles, web:2 walks the canary steps to its manual pause and is promoted.
    Returns (old stable revision, new revision)."""
    create_rollout(h.api, canary())
    first = await h.wait_status(healthy, what="first revision Healthy")
    h.set_image("web:2")
    st = await h.wait_status(
        lambda s: s.get("currentStepIndex") == 3 and s["phase"] == "Paused",
        what="manual pause",
        timeout=15,
    )
    h.request("promote", "1")
    await h.wait_status(
        lambda s: healthy(s) and s["stableRevision"] == st["currentRevision"],
        what="promoted",
        timeout=15,
    )
    return first["stableRevision"], st["currentRevision"]


async def settled(h: OperatorHarness, rec: Recorder, rev: str) -> list[dict[str, Any]]:
    """The recorded versions of the second generation on, once the recorder has seen ``rev``
    Healthy (the watch runs in its own thread, a little behind the status reads)."""

    def done() -> bool:
        return any(row(v)["Phase"] == "Healthy" and row(v)["Stable"] == rev for v in rec.seen())

    await h.wait_for(done, what="the watch to see the promotion")
    return [v for v in rec.seen() if v["metadata"].get("generation") == 2]


def test_printer_columns_are_simple_paths_kubectl_and_this_test_agree_on() -> None:
    for crd_file in sorted(p.name for p in CRDS.glob("sluice.dev_*.yaml")):
        for c in printer_columns(crd_file):
            assert SIMPLE_PATH.match(c["jsonPath"]), (crd_file, c)
    names = {c["name"]: c for c in COLUMNS}
    assert list(names) == ["Phase", "Step", "Weight", "Stable", "Canary", "Gate", "Age", "Message"]
    assert names["Weight"]["type"] == "integer"
    # Message only with -o wide; the rest always
    assert [n for n, c in names.items() if c.get("priority", 0)] == ["Message"]
    crd = yaml.safe_load((CRDS / "sluice.dev_rollouts.yaml").read_text(encoding="utf-8"))
    assert "sro" in crd["spec"]["names"]["shortNames"]


async def test_get_watch_rows_show_phase_step_and_weight_moving(
    harness: OperatorHarness, recorder: Recorder
) -> None:
    old, new = await roll_out_web2(harness)
    versions = await settled(harness, recorder, new)
    rows = [k for k, _ in groupby(cells(v) for v in versions)]  # -w prints repeats; drop them

    # the milestones, in this order (transient rows may sit between them)
    milestones = [
        ("Healthy", "-", 0),  # the spec patch itself: kubectl shows the old status first
        ("Progressing", "1/4", 0),  # new revision seen, at step 1, canary pods not ready yet
        ("Paused", "2/4", 25),  # step 1 done (setWeight 25), paused at step 2 (1s)
        ("Paused", "4/4", 75),  # steps 1-3 done, waiting for a person at step 4
        ("Healthy", "-", 0),  # promoted: no revision rolling out through the steps
    ]
    it = iter(rows)
    assert all(m in it for m in milestones), rows
    assert rows[0] == milestones[0] and rows[-1] == milestones[-1], rows
    # steps only move forward and the weight only takes the steps' values
    after_patch = [v for v in versions if row(v)["Canary"] == new]
    steps = [int(str(row(v)["Step"]).split("/")[0]) for v in after_patch if row(v)["Step"] != "-"]
    assert steps == sorted(steps), steps
    assert {row(v)["Weight"] for v in versions} == {0, 25, 75}
    # Stable/Canary: the old revision is stable until the promotion, the new one is rolled out
    assert {(row(v)["Stable"], row(v)["Canary"]) for v in versions} == {
        (old, old),
        (old, new),
        (new, new),
    }
    # every row has an Age and, with -o wide, a Message
    assert all(row(v)["Age"] and row(v)["Message"] for v in versions)
    assert row(versions[-1])["Message"] == f"revision {new} is stable"


async def test_ready_condition_is_what_kubectl_wait_needs(
    harness: OperatorHarness, recorder: Recorder
) -> None:
    _, new = await roll_out_web2(harness)
    versions = await settled(harness, recorder, new)
    met = [kubectl_wait_condition(v, "Ready") for v in versions]
    # `kubectl wait --for=condition=Ready` returns at the first version where it is met:
    # the promoted one, and it stays met from there on
    first = met.index(True)
    assert not any(met[:first]) and all(met[first:])
    done = versions[first]
    assert row(done)["Phase"] == "Healthy" and row(done)["Stable"] == new
    assert ready(done)["observedGeneration"] == done["metadata"]["generation"] == 2

    # Ready is "False" (not missing, not Unknown) whenever the rollout is not Healthy
    for v in versions:
        phase = row(v)["Phase"]
        assert ready(v)["status"] == ("True" if phase == "Healthy" else "False"), (phase, v)

    # right after `kubectl apply` the object holds generation 2 with generation 1's Healthy
    # status: the condition wait ignores it (observedGeneration 1 < 2), a jsonpath wait on the
    # phase does not, which is the race docs/kubectl.md warns about
    stale = versions[0]
    assert ready(stale)["status"] == "True" and ready(stale)["observedGeneration"] == 1
    assert not kubectl_wait_condition(stale, "Ready")
    assert kubectl_wait_jsonpath(stale, ".status.phase", "Healthy")


async def test_an_aborted_rollout_is_stalled_and_never_ready(
    harness: OperatorHarness, recorder: Recorder
) -> None:
    h = harness
    create_rollout(h.api, canary())
    await h.wait_status(healthy, what="first revision Healthy")
    h.set_image("web:2")
    await h.wait_status(lambda s: s["phase"] == "Paused", what="first pause")
    h.request("abort", "1")
    st = await h.wait_status(lambda s: s["phase"] == "Degraded", what="aborted")

    def seen_degraded() -> list[dict[str, Any]]:
        return [v for v in recorder.seen() if row(v)["Phase"] == "Degraded"]

    aborted = (await h.wait_for(seen_degraded, what="the watch to see the abort"))[-1]
    assert row(aborted)["Canary"] == st["currentRevision"] and row(aborted)["Weight"] == 0
    assert str(row(aborted)["Message"]).startswith("aborted: ")
    # `kubectl wait --for=condition=Ready` would time out; `--for=condition=Stalled` returns
    assert not kubectl_wait_condition(aborted, "Ready")
    assert kubectl_wait_condition(aborted, "Stalled")
    assert kubectl_wait_condition(aborted, "Ready", want="False")
    for v in recorder.seen():
        if v["metadata"].get("generation") == 2:
            assert not kubectl_wait_condition(v, "Ready"), row(v)
