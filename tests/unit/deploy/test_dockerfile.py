"""The image runs Sluice as the unprivileged user the Deployment expects.

CI cannot build images (no Docker daemon), so these tests read the Dockerfile instead: the shape
that matters for security and for the manifests (final-stage base, numeric non-root user matching
the pod's ``runAsUser``, exec-form entrypoint, no dev extras) and the build context (every COPY
source exists and survives ``.dockerignore``).
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass

import yaml

from tests.unit.deploy.rbac_scan import REPO


@dataclass(frozen=True)
class Instruction:
    op: str
    args: str
    stage: int


def instructions() -> list[Instruction]:
    text = (REPO / "Dockerfile").read_text()
    logical = re.sub(r"\\\n", " ", text)
    out: list[Instruction] = []
    stage = -1
    for line in logical.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        op, _, args = line.partition(" ")
        op = op.upper()
        if op == "FROM":
            stage += 1
        out.append(Instruction(op, args.strip(), stage))
    return out


def final_stage() -> list[Instruction]:
    all_ = instructions()
    last = max(i.stage for i in all_)
    return [i for i in all_ if i.stage == last]


def test_final_stage_is_python_311_slim_and_holds_no_sources() -> None:
    final = final_stage()
    assert final[0].op == "FROM" and final[0].args.split()[0] == "python:3.11-slim"
    assert not [i for i in final if i.op in ("COPY", "ADD") and "--from" not in i.args]


def test_runs_as_numeric_non_root_user_matching_the_deployment() -> None:
    final = final_stage()
    users = [i for i in final if i.op == "USER"]
    assert users, "the final stage must set USER"
    uid, _, gid = users[-1].args.partition(":")
    assert uid.isdigit() and int(uid) != 0 and (not gid or int(gid) != 0)
    # nothing after USER may need root, and USER must stay the last word on the user
    after = final[final.index(users[-1]) + 1 :]
    assert not [i for i in after if i.op in ("RUN", "USER")]
    deployment = yaml.safe_load((REPO / "deploy" / "base" / "deployment.yaml").read_text())
    pod = deployment["spec"]["template"]["spec"]["securityContext"]
    assert pod["runAsUser"] == int(uid)
    assert pod["runAsGroup"] == int(gid or uid)


def test_entrypoint_is_sluice_run_in_exec_form() -> None:
    (entry,) = [i for i in final_stage() if i.op == "ENTRYPOINT"]
    assert json.loads(entry.args) == ["sluice", "run"]


def test_installs_the_project_without_dev_extras() -> None:
    runs = " ".join(i.args for i in instructions() if i.op == "RUN")
    assert "pip install" in runs and "pip wheel" in runs
    assert "[dev]" not in runs and "[plots]" not in runs
    assert re.search(r"pip install [^&]*sluice-rollouts", runs)


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; ``!`` re-includes."""
    verdict = False
    for p in patterns:
        negate = p.startswith("!")
        pat = p[1:] if negate else p
        pat = pat.rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        if any(
            fnmatch.fnmatch(x, pat) or fnmatch.fnmatch(x, pat.removeprefix("**/")) for x in prefixes
        ):
            verdict = not negate
    return verdict


def test_every_copy_source_exists_and_is_in_the_build_context() -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = [
        src
        for i in instructions()
        if i.op == "COPY" and "--from" not in i.args
        for src in i.args.split()[:-1]
    ]
    assert sources
    for src in sources:
        assert (REPO / src).exists(), src
        assert not ignored(src, patterns), f"{src} is excluded by .dockerignore"
    for unwanted in (".git", ".venv", "tests", "simulations/results", "rollouts/__pycache__"):
        assert ignored(unwanted, patterns), f"{unwanted} would be sent to the Docker daemon"
    assert not ignored("rollouts/operator.py", patterns)
