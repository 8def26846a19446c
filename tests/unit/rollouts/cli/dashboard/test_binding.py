"""Where the dashboard may listen: loopback always, anything else only with --allow-remote."""

from __future__ import annotations

import pytest

from rollouts.cli.dashboard.binding import RemoteBindRefused, check_bind, is_loopback


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_addresses_need_no_flag(address: str) -> None:
    assert is_loopback(address)
    assert check_bind(address, allow_remote=False) is None


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "10.0.0.7", "192.168.1.2", "", "  "])
def test_other_addresses_are_refused_without_the_flag(address: str) -> None:
    assert not is_loopback(address)
    with pytest.raises(RemoteBindRefused, match="--allow-remote"):
        check_bind(address, allow_remote=False)


def test_the_flag_allows_it_with_a_warning() -> None:
    warning = check_bind("0.0.0.0", allow_remote=True)
    assert warning is not None
    assert warning.startswith("warning: listening on 0.0.0.0, not loopback")


def test_a_name_that_does_not_resolve_is_not_loopback() -> None:
    assert not is_loopback("no-such-host.invalid")
