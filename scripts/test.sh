#!/usr/bin/env bash
# Install everything the test suite needs (Python dev deps, git/tmux/graphviz, the
# Claude Code CLI from npm), lint and type-check, and run the whole suite.
# This is the README's test command; .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check -e '.[dev]'
bash scripts/install-test-tools.sh
python3 -m ruff check .
python3 -m mypy
python3 -m pytest "$@"
