"""``kube.follow_rollout`` (behind ``get --watch``, ``status`` and the operations' ``--wait``) on
scripted answers: the paths the emulator cannot produce.

kmock never ends a watch and never expires a resourceVersion, so a watch that ends, a 410 Gone,
another object's events and a forbidden watch are scripted here with a stand-in for the API.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from rollouts.cli import connection as kube
from rollouts.cli.connection import RolloutDeleted, follow_rollout

Script = list[list[dict[str, Any]] | BaseException]


def rollout(name: str, rv: int, phase: str = "Paused") -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": str(rv)}, "status": {"phase": phase}}


@dataclass
class FakeCustom:
    gets: list[dict[str, Any] | BaseException]
    calls: int = 0

    def get_namespaced_custom_object(self, *args: Any, **kw: Any) -> dict[str, Any]:
        self.calls += 1
        answer = self.gets.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def list_namespaced_custom_object(self, *args: Any, **kw: Any) -> Any:
        raise AssertionError("the watch is scripted; nothing lists")


@dataclass
class FakeTarget:
    custom: FakeCustom
    namespace: str = "ns"
    context: str = "test"
    server: str = "https://example"


@dataclass
class Recorder:
    versions: list[str | None] = field(default_factory=list)


def scripted(monkeypatch: pytest.MonkeyPatch, streams: Script) -> Recorder:
    seen = Recorder()

    class Watch:
        def stream(self, func: Any, *args: Any, **kw: Any) -> Iterator[dict[str, Any]]:
            seen.versions.append(kw.get("resource_version"))
            if not streams:
                raise AssertionError("watched more often than scripted")
            step = streams.pop(0)
            if isinstance(step, BaseException):
                raise step
            yield from step

    monkeypatch.setattr(kubernetes.watch, "Watch", Watch)
    return seen


def follow(
    custom: FakeCustom, *, timeout: float | None = None, limit: int = 20, **kw: Any
) -> tuple[list[dict[str, Any]], BaseException | None]:
    got: list[dict[str, Any]] = []
    try:
        for doc in follow_rollout(FakeTarget(custom), "web", timeout=timeout, **kw):  # type: ignore[arg-type]
            got.append(doc)
            if len(got) >= limit:
                break
    except kube.CliError as e:
        return got, e
    return got, None


def test_follows_its_rollout_reopens_and_resynchronises_after_410(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    watched = scripted(
        monkeypatch,
        [
            # another rollout's change is not ours (selectors are a hint)
            [
                {"type": "MODIFIED", "object": rollout("shop", 11)},
                {"type": "MODIFIED", "object": rollout("web", 12, "Progressing")},
            ],
            # (the server ended that watch: get, then reopen from there)
            ApiException(status=410, reason="Gone"),  # too old: get, then watch from the get
            [{"type": "DELETED", "object": rollout("web", 41)}],
        ],
    )
    custom = FakeCustom(
        gets=[rollout("web", 8), rollout("web", 12, "Progressing"), rollout("web", 35)]
    )
    got, error = follow(custom)
    assert [d["metadata"]["resourceVersion"] for d in got] == ["8", "12", "35"]
    assert [d["status"]["phase"] for d in got] == ["Paused", "Progressing", "Paused"]
    assert watched.versions == ["8", "12", "35"]
    assert isinstance(error, RolloutDeleted) and str(error) == "rollout ns/web was deleted"


def test_a_404_on_resynchronising_means_deleted(monkeypatch: pytest.MonkeyPatch) -> None:
    scripted(monkeypatch, [[]])
    custom = FakeCustom(gets=[rollout("web", 8), ApiException(status=404, reason="Not Found")])
    got, error = follow(custom)
    assert len(got) == 1
    assert isinstance(error, RolloutDeleted)


def test_a_forbidden_watch_falls_back_to_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    watched = scripted(monkeypatch, [ApiException(status=403, reason="Forbidden")])
    custom = FakeCustom(
        gets=[rollout("web", 8), rollout("web", 8), rollout("web", 9, "Healthy"), rollout("web", 9)]
        + [rollout("web", 9)] * 50
    )
    got, error = follow(custom, timeout=0.5, interval=0.01, limit=2)
    assert error is None
    assert [d["status"]["phase"] for d in got] == ["Paused", "Healthy"]
    assert watched.versions == ["8"]  # one watch, refused; then only gets


def test_other_errors_on_resynchronising_end_it_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scripted(monkeypatch, [ApiException(status=500, reason="Internal")])
    custom = FakeCustom(gets=[rollout("web", 8), ApiException(status=403, reason="Forbidden")])
    got, error = follow(custom)
    assert len(got) == 1
    assert isinstance(error, kube.CliError) and not isinstance(error, RolloutDeleted)
    assert str(error).startswith("rollout ns/web: forbidden")
