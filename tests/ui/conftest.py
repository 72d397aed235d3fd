"""Fixtures of the web view's tests: real runs, a report and PR records, made once per module."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ui.data import Runs, make_repo, make_report, make_runs


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    return make_runs(tmp_path_factory.mktemp("ui-runs"))


@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_report(tmp_path_factory.mktemp("ui-report") / "report.json")


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_repo(tmp_path_factory.mktemp("ui-repo") / "target")
