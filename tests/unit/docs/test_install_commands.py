"""The install commands the docs show work from a checkout.

Sluice is not on a package index, so every ``pip install`` in the docs must install from the
checkout or a built wheel; every file or directory a ``kubectl apply``/``helm`` command names must
exist; and the one-step install is one command (a fresh cluster once needed two applies, and the
docs showed a retry).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

REPO = Path(__file__).parents[3]
DOCS = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md")])
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def lines(*tools: str) -> list[tuple[str, str]]:
    out = []
    for doc in DOCS:
        text = doc.read_text()
        for block in FENCE.finditer(text):
            for line in block.group(2).replace("\\\n", " ").splitlines():
                line = line.split("  #")[0].split(" # ")[0].strip().removeprefix("$ ")
                if line.startswith("# or: "):
                    line = line.removeprefix("# or: ")
                for part in re.split(r"\s+(?:&&|/|\|\|)\s+", line):
                    if any(re.search(rf"(^|/){t}\s", part) for t in tools):
                        out.append((doc.name, part))
        # inline `pip install ...` in prose too
        for m in re.finditer(r"`(pip install [^`]+)`", text):
            out.append((doc.name, m.group(1)))
    return out


def test_pip_installs_come_from_the_checkout_or_a_built_wheel() -> None:
    found = [(d, line) for d, line in lines("pip") if " install " in f" {line} "]
    assert found, "the docs show how to install the CLI"
    for doc, line in found:
        words = shlex.split(line)
        targets = [w for w in words[words.index("install") + 1 :] if not w.startswith("-")]
        assert targets, (doc, line)
        for t in targets:
            path = t.split("[")[0]
            assert path == "." or path.startswith(("dist/", "./")), (
                f"{doc}: {line!r} installs {t!r} from an index, which does not serve Sluice"
            )
    everywhere = "\n".join(d.read_text() for d in DOCS)
    assert "pip install 'sluice-rollouts" not in everywhere


def test_paths_in_apply_and_helm_commands_exist() -> None:
    found = lines("kubectl", "helm")
    checked = 0
    for doc, line in found:
        words = shlex.split(line)
        for i, w in enumerate(words):
            if w in ("-k", "-f") and i + 1 < len(words) and words[i - 1] not in ("sed",):
                target = words[i + 1]
            elif words[:2] in (["helm", "install"], ["helm", "upgrade"]) and i == 3:
                target = w
            else:
                continue
            if (
                target == "-"
                or target.startswith(("http", "$", "my-", "dist/"))
                or "/" not in target
            ):
                continue
            assert (REPO / target).exists(), f"{doc}: {line!r} names {target}, which does not exist"
            checked += 1
    assert checked >= 5


def test_the_controller_installs_with_one_command() -> None:
    for doc in DOCS:
        text = doc.read_text()
        assert "apply twice" not in text.lower(), doc.name
        assert "kubectl apply -k deploy/ ||" not in text, doc.name
    guide = (REPO / "docs" / "getting-started.md").read_text()
    assert "```sh\nkubectl apply -k deploy/\n" in guide
