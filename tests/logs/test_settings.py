"""GRAFANA_LOKI_* from the environment and `.tidepool.env`."""

from __future__ import annotations

from pathlib import Path

import pytest

from mgt.logs.settings import (
    DEFAULT_LOKI_URL,
    find_env_file,
    load_settings,
    parse_env_file,
)


def test_parse_env_file() -> None:
    text = "\n".join([
        "# Grafana Cloud",
        "",
        "GRAFANA_LOKI_URL=https://logs.example.net  # inline comment",
        "export GRAFANA_LOKI_USER = '12345'",
        'GRAFANA_LOKI_TOKEN="glc_a#b \\"quoted\\" \\\\ end"  # comment',
        "GRAFANA_LOKI_ORG_ID='lit\\eral # not a comment'",
        "BARE=a#b",
        "EMPTY=",
        "not a line",
        "=nokey",
        "  INDENTED=yes",
        "DUP=1",
        "DUP=2",
    ])
    assert parse_env_file(text) == {
        "GRAFANA_LOKI_URL": "https://logs.example.net",
        "GRAFANA_LOKI_USER": "12345",
        "GRAFANA_LOKI_TOKEN": 'glc_a#b "quoted" \\ end',
        "GRAFANA_LOKI_ORG_ID": "lit\\eral # not a comment",
        "BARE": "a#b",
        "EMPTY": "",
        "INDENTED": "yes",
        "DUP": "2",
    }


def test_environment_wins_over_the_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".tidepool.env"
    env_file.write_text("GRAFANA_LOKI_URL=http://file:3100\nGRAFANA_LOKI_USER=fileuser\n"
                        "GRAFANA_LOKI_TOKEN=filetoken\n")
    settings = load_settings({"GRAFANA_LOKI_URL": "http://env:3100"}, env_file)
    assert settings.url == "http://env:3100" and settings.url_from == "environment"
    assert (settings.user, settings.token) == ("fileuser", "filetoken")
    assert "filetoken" not in repr(settings)


def test_defaults_without_anything() -> None:
    settings = load_settings({}, env_file=False)
    assert settings.url == DEFAULT_LOKI_URL
    assert (settings.user, settings.token, settings.bearer, settings.org_id) == (None,) * 4


def test_env_file_found_in_a_parent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".tidepool.env").write_text("GRAFANA_LOKI_BEARER=b\n")
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert find_env_file(deep) == tmp_path / ".tidepool.env"
    monkeypatch.chdir(deep)
    assert load_settings({}).bearer == "b"


def test_unreadable_env_file_is_ignored(tmp_path: Path) -> None:
    assert load_settings({}, tmp_path / "missing.env").url == DEFAULT_LOKI_URL
