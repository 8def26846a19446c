"""The watch behind ``--watch``, on scripted answers: the paths the emulator cannot produce.

kmock never ends a watch and never expires a resourceVersion, so a watch that times out, a
410 Gone and another object's events are scripted here with a stand-in for the API.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import kubernetes
import pytest
from kubernetes.client.exceptions import ApiException

from rollouts.cli import get as get_module

Script = list[list[dict[str, Any]] | BaseException]


def rollout(name: str, rv: int, phase: str = "Paused") -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": str(rv)}, "status": {"phase": phase}}


@dataclass
class FakeCustom:
    lists: list[dict[str, Any]]
    calls: list[str] = field(default_factory=list)

    def list_namespaced_custom_object(self, *args: Any, **kw: Any) -> dict[str, Any]:
        self.calls.append("list")
        return self.lists.pop(0)


@dataclass
class FakeTarget:
    custom: FakeCustom
    namespace: str = "ns"


def fake_watch(streams: Script, versions: list[str | None]) -> type:
    class Watch:
        def stream(self, func: Any, *args: Any, **kw: Any) -> Iterator[dict[str, Any]]:
            versions.append(kw.get("resource_version"))
            step = streams.pop(0)
            if isinstance(step, BaseException):
                raise step
            yield from step

        def stop(self) -> None:
            pass

    return Watch


def run(
    monkeypatch: pytest.MonkeyPatch, lists: list[dict[str, Any]], streams: Script
) -> tuple[list[Any], list[str | None], FakeCustom]:
    versions: list[str | None] = []
    monkeypatch.setattr(kubernetes.watch, "Watch", fake_watch(streams, versions))
    custom = FakeCustom(lists)
    out: queue.Queue[Any] = queue.Queue()
    thread = threading.Thread(
        target=get_module._watch_rollout,
        args=(FakeTarget(custom), "web", out, threading.Event()),
    )
    thread.start()
    thread.join(5)
    assert not thread.is_alive()
    return list(out.queue), versions, custom


def listing(rv: int, *items: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"resourceVersion": str(rv)}, "items": list(items)}


def test_follows_its_rollout_reconnects_and_relists_after_410(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    messages, versions, custom = run(
        monkeypatch,
        lists=[listing(10, rollout("shop", 9), rollout("web", 8)), listing(40, rollout("web", 35))],
        streams=[
            # another rollout's change moves the position on, but is not ours to draw
            [
                {"type": "MODIFIED", "raw_object": rollout("shop", 11)},
                {"type": "MODIFIED", "raw_object": rollout("web", 12, "Progressing")},
            ],
            [],  # the server ended the watch (timeout): reopen from the last position
            ApiException(status=410, reason="Gone"),  # too old: list again
            [{"type": "DELETED", "raw_object": rollout("web", 41)}],
        ],
    )
    assert versions == ["10", "12", "12", "40"]
    assert custom.calls == ["list", "list"]
    kinds = [type(m).__name__ for m in messages]
    assert kinds == ["_Changed", "_Changed", "_Changed", "_Deleted"]
    assert [m.rollout["status"]["phase"] for m in messages[:3]] == [
        "Paused",
        "Progressing",
        "Paused",
    ]


def test_a_rollout_missing_from_the_list_is_deleted(monkeypatch: pytest.MonkeyPatch) -> None:
    messages, versions, _ = run(monkeypatch, lists=[listing(10, rollout("shop", 9))], streams=[])
    assert [type(m).__name__ for m in messages] == ["_Deleted"]
    assert versions == []


def test_other_errors_end_the_watch_with_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    forbidden = ApiException(status=403, reason="Forbidden")
    messages, _, _ = run(monkeypatch, lists=[listing(10, rollout("web", 8))], streams=[forbidden])
    assert [type(m).__name__ for m in messages] == ["_Changed", "_Failed"]
    assert messages[1].error is forbidden
