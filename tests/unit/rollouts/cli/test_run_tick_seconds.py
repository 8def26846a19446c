"""``--tick-seconds`` is accepted (old settings must not break a start) and said to do nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from rollouts.cli.main import cli


@pytest.mark.parametrize("how", ["flag", "env"])
def test_tick_seconds_is_accepted_with_a_warning(
    how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # no cluster to reach: the start fails after the settings are read and the warning logged
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    args = ["run", "--namespace", "shop", "--log-format", "text"]
    env = {}
    if how == "flag":
        args += ["--tick-seconds", "2"]
    else:
        env["SLUICE_TICK_SECONDS"] = "2"
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code != 0  # no cluster: but not a usage error about the setting
    assert "no such option" not in result.output.lower()
    assert "--tick-seconds/SLUICE_TICK_SECONDS has no effect" in result.stderr
    assert "no Kubernetes cluster configured" in result.stderr


def test_no_warning_without_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.delenv("SLUICE_TICK_SECONDS", raising=False)
    result = CliRunner().invoke(cli, ["run", "--namespace", "shop", "--log-format", "text"])
    assert "no Kubernetes cluster configured" in result.stderr
    assert "tick" not in result.stderr
