"""Argo CD reads a Rollout's health through ``deploy/argocd/health.lua``, and leaves Sluice's
fields alone through ``ignore-differences.yaml``.

The health cases run the Lua for real under ``lua5.4`` (Debian package, installed on CI by
``scripts/system-deps.sh``), with the object handed over as a Lua table the way Argo CD does, and
are laid out like Argo CD's own ``resource_customizations`` tests (``health_test.yaml`` listing
``inputPath`` and the expected ``healthStatus``). Argo CD runs gopher-lua (Lua 5.1), so a guard
keeps 5.2+ syntax out of the script.

The ignore rules are checked against the routers themselves: every JSON-patch path a router
writes must be covered by a rule, so a router that starts writing a new field fails here.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml

from rollouts.api.rollout import Phase
from rollouts.routing import gateway_api, istio, nginx, smi
from tests.unit.deploy.rbac_scan import REPO

ARGOCD = REPO / "deploy" / "argocd"
HEALTH = ARGOCD / "health.lua"
ARGO_STATES = {"Healthy", "Progressing", "Suspended", "Degraded", "Missing", "Unknown"}


# ---------------------------------------------------------------------------------------------
# running health.lua
# ---------------------------------------------------------------------------------------------


def lua_string(s: str) -> str:
    out = []
    for b in s.encode():
        c = chr(b)
        out.append(c if 32 <= b < 127 and c not in '"\\' else f"\\{b:03d}")
    return '"' + "".join(out) + '"'


def lua_value(v: Any) -> str:
    """A YAML/JSON value as a Lua literal, the shape Argo CD hands to health scripts."""
    if v is None:
        return "nil"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, dt.datetime | dt.date):  # JSON has no timestamps: Argo CD sees strings
        return lua_string(v.isoformat().replace("+00:00", "Z"))
    if isinstance(v, str):
        return lua_string(v)
    if isinstance(v, list):
        return "{" + ", ".join(lua_value(x) for x in v) + "}"
    if isinstance(v, dict):
        return (
            "{" + ", ".join(f"[{lua_string(str(k))}] = {lua_value(x)}" for k, x in v.items()) + "}"
        )
    raise TypeError(type(v))


def lua() -> str:
    found = shutil.which("lua5.4")
    assert found, "lua5.4 is required (Debian: apt-get install lua5.4; CI: scripts/system-deps.sh)"
    return found


def health(obj: dict[str, Any]) -> tuple[str, str]:
    chunk = (
        f"obj = {lua_value(obj)}\n"
        f"local hs = dofile({lua_string(str(HEALTH))})\n"
        'io.write(tostring(hs.status), "\\0", tostring(hs.message))\n'
    )
    out = subprocess.run([lua(), "-"], input=chunk, capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out.stderr
    status, message = out.stdout.split("\0")
    return status, message


CASES = yaml.safe_load((ARGOCD / "health_test.yaml").read_text())["tests"]


@pytest.mark.parametrize("case", CASES, ids=[Path(c["inputPath"]).stem for c in CASES])
def test_health_case(case: dict[str, Any]) -> None:
    obj = yaml.safe_load((ARGOCD / case["inputPath"]).read_text())
    assert health(obj) == (case["healthStatus"]["status"], case["healthStatus"]["message"])


def test_every_testdata_file_is_a_case_and_every_state_is_covered() -> None:
    listed = {c["inputPath"] for c in CASES}
    on_disk = {f"testdata/{p.name}" for p in (ARGOCD / "testdata").glob("*.yaml")}
    assert listed == on_disk
    assert {c["healthStatus"]["status"] for c in CASES} == {
        "Healthy",
        "Progressing",
        "Suspended",
        "Degraded",
    }


@pytest.mark.parametrize("phase", typing.get_args(Phase))
def test_every_phase_sluice_writes_has_its_own_argo_state(phase: str) -> None:
    obj = {
        "metadata": {"name": "web", "generation": 7},
        "status": {"observedGeneration": 7, "phase": phase, "message": f"now {phase}"},
    }
    status, message = health(obj)
    assert status in ARGO_STATES
    assert message == f"now {phase}"  # the phase's own message, not the unknown-phase fallback


def test_stalled_condition_wins_over_a_healthy_looking_phase() -> None:
    obj: dict[str, Any] = {
        "metadata": {"generation": 2},
        "status": {
            "observedGeneration": 2,
            "phase": "Healthy",
            "message": "stale",
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "Healthy", "message": ""},
                {"type": "Stalled", "status": "True", "reason": "X", "message": "broken"},
            ],
        },
    }
    assert health(obj) == ("Degraded", "broken")
    obj["status"]["conditions"][1]["status"] = "False"
    assert health(obj) == ("Healthy", "stale")


def test_script_stays_within_lua_51_that_argo_cd_runs() -> None:
    code = "\n".join(line.split("--", 1)[0] for line in HEALTH.read_text().splitlines())
    for pattern in (
        r"\bgoto\b",
        r"//",
        r"<const>",
        r"<close>",
        r"~(?!=)",
        r"[&|]",
        r"\butf8\.",
        r"\bmath\.tointeger\b",
        r"\btable\.move\b",
    ):
        assert not re.search(pattern, code), pattern


def test_argocd_cm_patch_inlines_the_lua_file_verbatim() -> None:
    patch = yaml.safe_load((ARGOCD / "argocd-cm-patch.yaml").read_text())
    assert (patch["kind"], patch["metadata"]["name"]) == ("ConfigMap", "argocd-cm")
    assert patch["data"]["resource.customizations.health.sluice.dev_Rollout"] == HEALTH.read_text()
    # the only other key: the resource actions (tests/unit/deploy/test_argocd_actions.py)
    assert set(patch["data"]) == {
        "resource.customizations.health.sluice.dev_Rollout",
        "resource.customizations.actions.sluice.dev_Rollout",
    }


# ---------------------------------------------------------------------------------------------
# ignoreDifferences against what the routers write
# ---------------------------------------------------------------------------------------------


def jq_to_pointer_regex(expr: str) -> re.Pattern[str]:
    """The subset used: ``.a.b[].c`` and ``.a["key/with.dots"]``, as a JSON-pointer regex."""
    assert re.fullmatch(r'(\.[A-Za-z]+(\[\])?|\["[^"]+"\])+', expr), f"unsupported jq: {expr}"
    parts = re.findall(r'\.([A-Za-z]+)(\[\])?|\["([^"]+)"\]', expr)
    rx = ""
    for name, each, key in parts:
        seg = name or key.replace("~", "~0").replace("/", "~1")
        rx += "/" + re.escape(seg) + (r"/\d+" if each else "")
    return re.compile(rx)


def rules() -> dict[tuple[str, str], list[re.Pattern[str]]]:
    doc = yaml.safe_load((ARGOCD / "ignore-differences.yaml").read_text())
    assert "RespectIgnoreDifferences=true" in doc["spec"]["syncPolicy"]["syncOptions"]
    return {
        (r["group"], r["kind"]): [jq_to_pointer_regex(e) for e in r["jqPathExpressions"]]
        for r in doc["spec"]["ignoreDifferences"]
    }


def written_paths(ops: list[dict[str, Any]]) -> list[str]:
    paths = [op["path"] for op in ops if op["op"] != "test"]
    assert paths, "the router wrote nothing: the case does not exercise it"
    return paths


def covered(paths: list[str], patterns: list[re.Pattern[str]]) -> bool:
    return all(any(p.fullmatch(path) for p in patterns) for path in paths)


SERVICES = {"stable": "web-stable", "canary": "web-canary", "namespace": "shop"}


def test_istio_weights_sluice_writes_are_ignored() -> None:
    vs = {
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "hosts": ["web.example.com"],
            "http": [
                {"name": "admin", "route": [{"destination": {"host": "admin"}, "weight": 100}]},
                {
                    "name": "primary",
                    "route": [
                        {"destination": {"host": "web-stable"}, "weight": 100},
                        {"destination": {"host": "web-canary"}, "weight": 0},
                    ],
                },
            ],
        },
    }
    ops = istio.weight_patch(vs, 30, routes=["primary"], **SERVICES)
    assert covered(written_paths(ops), rules()[(istio.GROUP, "VirtualService")])


def test_gateway_api_weights_sluice_writes_are_ignored() -> None:
    route = {
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "parentRefs": [{"name": "gw"}],
            "rules": [
                {
                    "backendRefs": [
                        {"name": "web-stable", "port": 80, "weight": 100},
                        {"name": "web-canary", "port": 80},
                    ]
                }
            ],
        },
    }
    ops = gateway_api.weight_patch(route, 30, **SERVICES)
    key = (gateway_api.RESOURCE.group, gateway_api.RESOURCE.kind)
    assert covered(written_paths(ops), rules()[key])


def test_smi_weights_sluice_writes_are_ignored() -> None:
    split = {
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {
            "service": "web",
            "backends": [
                {"service": "web-stable", "weight": 100},
                {"service": "web-canary", "weight": 0},
            ],
        },
    }
    ops = smi.weight_patch(split, 30, **SERVICES)
    assert covered(written_paths(ops), rules()[(smi.GROUP, "TrafficSplit")])


def test_service_slot_selector_key_is_ignored() -> None:
    assert covered(["/spec/selector/sluice.dev~1slot"], rules()[("", "Service")])
    assert not covered(["/spec/selector/app"], rules()[("", "Service")])


def test_nginx_canary_ingress_is_a_child_argo_cd_neither_diffs_nor_prunes() -> None:
    stable = {
        "metadata": {
            "name": "web",
            "namespace": "shop",
            "labels": {"app.kubernetes.io/instance": "shop-app"},
            "annotations": {
                "argocd.argoproj.io/tracking-id": "shop-app:networking.k8s.io/Ingress:shop/web"
            },
        },
        "spec": {
            "rules": [
                {
                    "host": "web.example.com",
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {
                                    "service": {"name": "web-stable", "port": {"number": 80}}
                                },
                            }
                        ]
                    },
                }
            ]
        },
    }
    canary = nginx.desired_canary(
        stable,
        owner=nginx.Owner("web", uid="1234"),
        stable_service="web-stable",
        canary_service="web-canary",
        weight=30,
    )
    meta = canary["metadata"]
    assert "app.kubernetes.io/instance" not in meta.get("labels", {})
    assert not any(k.startswith("argocd.argoproj.io/") for k in meta.get("annotations", {}))
    (owner,) = meta["ownerReferences"]
    assert (owner["kind"], owner["uid"]) == ("Rollout", "1234")
