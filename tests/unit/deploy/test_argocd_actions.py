"""Argo CD resource actions (``deploy/argocd/actions/``): promote, promote-full, abort, retry,
pause and resume from Argo CD's UI or ``argocd app actions run``.

Each action runs for real under ``lua5.4`` with the Rollout handed over as a Lua table, as Argo CD
does, and what it returns is read back as JSON. The annotation it writes is parsed with the
operator's own parser (``rollouts.request_annotation``), so an action the controller would reject
fails here; everything else of the object must come back unchanged, since Argo CD patches the
difference. ``discovery.lua`` runs against the cases in ``action_test.yaml``, laid out like Argo
CD's own ``resource_customizations`` tests.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from rollouts.engine.plan import REQUEST_KINDS
from rollouts.request_annotation import ANNOTATION, parse_request
from tests.unit.deploy.test_argocd import ARGOCD, lua, lua_string, lua_value

ACTIONS = ARGOCD / "actions"
DISCOVERY = ACTIONS / "discovery.lua"
TESTDATA = sorted((ACTIONS / "testdata").glob("*.yaml"))

# A Lua table back to JSON: tables with only keys 1..n are arrays, the rest objects.
TO_JSON = r"""
local function encode(v)
  local t = type(v)
  if t == "nil" then return "null" end
  if t == "boolean" then return tostring(v) end
  if t == "number" then
    if v == math.floor(v) then return string.format("%d", v) end
    return string.format("%.17g", v)
  end
  if t == "string" then
    return '"' .. string.gsub(v, '[%c"\\]', function(c)
      return string.format("\\u%04x", string.byte(c)) end) .. '"'
  end
  local n, keys = 0, {}
  for k, _ in pairs(v) do n = n + 1; keys[#keys + 1] = k end
  if n > 0 and n == #v then
    local parts = {}
    for i = 1, #v do parts[i] = encode(v[i]) end
    return "[" .. table.concat(parts, ",") .. "]"
  end
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = encode(tostring(k)) .. ":" .. encode(v[k]) end
  return "{" .. table.concat(parts, ",") .. "}"
end
"""


def run_lua(script: Path, obj: dict[str, Any], *, frozen_time: str | None = None) -> Any:
    """Run an action or discovery script on ``obj``; its result as JSON. ``frozen_time`` stands in
    for ``os.date`` so two runs in the same second can be compared."""
    freeze = ""
    if frozen_time is not None:
        freeze = f"package.loaded.os.date = function() return {lua_string(frozen_time)} end\n"
    chunk = (
        TO_JSON
        + freeze
        + f"obj = {lua_value(obj)}\n"
        + f"local result = dofile({lua_string(str(script))})\n"
        + "io.write(encode(result))\n"
    )
    out = subprocess.run([lua(), "-"], input=chunk, capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def load(path: Path) -> dict[str, Any]:
    # through JSON: Argo CD hands over JSON, where timestamps are strings
    doc: dict[str, Any] = json.loads(json.dumps(yaml.safe_load(path.read_text()), default=str))
    return doc


def action(kind: str) -> Path:
    return ACTIONS / kind / "action.lua"


@pytest.mark.parametrize("kind", REQUEST_KINDS)
@pytest.mark.parametrize("path", TESTDATA, ids=[p.stem for p in TESTDATA])
def test_action_writes_the_request_the_operator_parses_and_nothing_else(
    kind: str, path: Path
) -> None:
    before = load(path)
    after = run_lua(action(kind), before)
    value = after["metadata"]["annotations"].pop(ANNOTATION)
    request = parse_request(value)
    assert (request.kind, request.id) == (kind, value)
    assert value.startswith(f"{kind}@argocd-")
    if not after["metadata"]["annotations"]:
        del after["metadata"]["annotations"]
    assert after == before


def test_other_annotations_are_kept_and_an_earlier_request_is_replaced() -> None:
    obj = load(ACTIONS / "testdata" / "progressing.yaml")
    obj["metadata"]["annotations"] = {"team": "payments", ANNOTATION: "pause@old"}
    after = run_lua(action("promote"), obj)
    annotations = after["metadata"]["annotations"]
    assert annotations["team"] == "payments"
    assert parse_request(annotations[ANNOTATION]).kind == "promote"


def test_two_clicks_in_the_same_second_write_different_ids() -> None:
    """The controller acts once per id: the second click must not reuse the first one's. Each
    write changes resourceVersion, so the second click sees a new one."""
    obj = load(ACTIONS / "testdata" / "progressing.yaml")
    first = run_lua(action("promote"), obj, frozen_time="20250301T100000Z")
    assert first["metadata"]["annotations"][ANNOTATION] == "promote@argocd-20250301T100000Z-81234"
    obj["metadata"]["resourceVersion"] = "81240"
    second = run_lua(action("promote"), obj, frozen_time="20250301T100000Z")
    assert second["metadata"]["annotations"][ANNOTATION] == "promote@argocd-20250301T100000Z-81240"


@pytest.mark.parametrize(
    "version", [None, "", "a/b c\"d'e", "9" * 300], ids=["absent", "empty", "odd", "long"]
)
def test_any_resource_version_still_gives_an_id_the_operator_accepts(version: str | None) -> None:
    obj = load(ACTIONS / "testdata" / "healthy.yaml")
    if version is None:
        del obj["metadata"]["resourceVersion"]
    else:
        obj["metadata"]["resourceVersion"] = version
    after = run_lua(action("retry"), obj)
    value = after["metadata"]["annotations"][ANNOTATION]
    assert parse_request(value).kind == "retry"  # raises InvalidRequest on a bad id


CASES = yaml.safe_load((ACTIONS / "action_test.yaml").read_text())["discoveryTests"]


@pytest.mark.parametrize("case", CASES, ids=[Path(c["inputPath"]).stem for c in CASES])
def test_discovery_case(case: dict[str, Any]) -> None:
    found = run_lua(DISCOVERY, load(ACTIONS / case["inputPath"]))
    assert {k: v["disabled"] for k, v in found.items()} == {
        r["name"]: r["disabled"] for r in case["result"]
    }


def test_every_request_kind_has_an_action_and_every_case_file_is_used() -> None:
    assert {p.parent.name for p in ACTIONS.glob("*/action.lua")} == set(REQUEST_KINDS)
    assert {c["inputPath"] for c in CASES} == {f"testdata/{p.name}" for p in TESTDATA}
    for case in CASES:
        assert [r["name"] for r in case["result"]] == list(REQUEST_KINDS)
    # each kind is both enabled and disabled somewhere
    for kind in REQUEST_KINDS:
        states = {r["disabled"] for c in CASES for r in c["result"] if r["name"] == kind}
        assert states == {True, False}, kind


def test_the_actions_differ_only_in_their_kind() -> None:
    bodies = {k: action(k).read_text().replace(k, "KIND") for k in REQUEST_KINDS}
    assert len(set(bodies.values())) == 1


@pytest.mark.parametrize("script", [DISCOVERY, *(action(k) for k in REQUEST_KINDS)])
def test_scripts_stay_within_lua_51_that_argo_cd_runs(script: Path) -> None:
    code = "\n".join(line.split("--", 1)[0] for line in script.read_text().splitlines())
    for pattern in (r"\bgoto\b", r"//", r"<const>", r"<close>", r"~(?!=)", r"[&|]", r"\butf8\."):
        assert not re.search(pattern, code), pattern


def test_argocd_cm_patch_inlines_the_action_scripts_verbatim() -> None:
    patch = yaml.safe_load((ARGOCD / "argocd-cm-patch.yaml").read_text())
    actions = yaml.safe_load(patch["data"]["resource.customizations.actions.sluice.dev_Rollout"])
    assert actions == {
        "discovery.lua": DISCOVERY.read_text(),
        "definitions": [{"name": k, "action.lua": action(k).read_text()} for k in REQUEST_KINDS],
    }
