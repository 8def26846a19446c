"""Shards: stable (the same answer in every process), even, and named per peering."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest

from rollouts.settings import Settings, SettingsError, from_env
from rollouts.sharding import Shard, ShardError, shard_of


def test_a_rollouts_shard_is_the_same_in_another_process() -> None:
    """``hash()`` is salted per process; the shard must not be."""
    here = [shard_of("shop", f"web-{i}", 4) for i in range(50)]
    code = "from rollouts.sharding import shard_of; print([shard_of('shop', f'web-{i}', 4) for i in range(50)])"
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert there.stdout.strip() == str(here)


def test_shards_are_even_and_every_rollout_has_exactly_one_owner() -> None:
    names = [(f"ns-{i % 7}", f"app-{i}") for i in range(4000)]
    counts = Counter(shard_of(ns, n, 4) for ns, n in names)
    assert set(counts) == {0, 1, 2, 3}
    assert all(900 <= c <= 1100 for c in counts.values()), counts
    shards = [Shard(i, 4) for i in range(4)]
    assert all(sum(s.owns(ns, n) for s in shards) == 1 for ns, n in names[:200])


def test_parse_and_peering_names() -> None:
    assert Shard.parse(" 2/4 ") == Shard(2, 4)
    assert Shard(2, 4).peering_name("sluice.dev") == "sluice.dev-shard-2-of-4"
    assert Shard(0, 1).peering_name("sluice.dev") == "sluice.dev", "one shard: the usual peering"
    for bad in ("4/4", "2", "-1/3", "a/b", "1/0"):
        with pytest.raises(ShardError):
            Shard.parse(bad)


def test_shard_and_timings_come_from_flags_over_the_environment() -> None:
    env = {
        "SLUICE_SHARD": "1/3",
        "SLUICE_WORKERS": "40",
        "SLUICE_TICK_SECONDS": "2",
        "SLUICE_ROUTER_TIMEOUT": "4.5",
        "SLUICE_CONNECT_TIMEOUT": "3",
        "SLUICE_KUBE_TIMEOUT": "20",
        "SLUICE_PROMETHEUS_TIMEOUT": "15",
        "SLUICE_IDLE_SECONDS": "120",
    }
    s = from_env(env)
    assert (s.shard, s.workers, s.tick_seconds, s.router_timeout) == (Shard(1, 3), 40, 2.0, 4.5)
    assert (s.connect_timeout, s.request_timeout, s.prometheus_timeout) == (3.0, 20.0, 15.0)
    assert s.peering == "sluice.dev-shard-1-of-3" and s.idle_seconds == 120.0
    flagged = s.with_flags(shard="0/3", workers=8, router_timeout=None)
    assert (flagged.shard, flagged.workers, flagged.router_timeout) == (Shard(0, 3), 8, 4.5)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SLUICE_SHARD": "3/3"}, "SLUICE_SHARD"),
        ({"SLUICE_WORKERS": "0"}, "SLUICE_WORKERS"),
        ({"SLUICE_WORKERS": "many"}, "SLUICE_WORKERS"),
        ({"SLUICE_ROUTER_TIMEOUT": "soon"}, "SLUICE_ROUTER_TIMEOUT"),
        ({"SLUICE_KUBE_TIMEOUT": "0"}, "--kube-timeout"),
        ({"SLUICE_TICK_SECONDS": "-1"}, "tick_seconds"),
    ],
)
def test_bad_values_are_refused_naming_the_setting(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        from_env(env)


def test_flags_are_checked_too() -> None:
    with pytest.raises(SettingsError, match="--shard"):
        Settings(metrics_port=None, liveness_port=None).with_flags(shard="x/2")
