#!/usr/bin/env bash
# System programs (bubblewrap: the must_pass sandbox) and the npm-installed Claude Code CLI
# used by the end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for prog in git tmux dot bwrap; do
    command -v "$prog" >/dev/null 2>&1 || need+=("$prog")
done
if ((${#need[@]})); then
    pkgs=()
    for prog in "${need[@]}"; do
        case "$prog" in dot) pkgs+=(graphviz) ;; bwrap) pkgs+=(bubblewrap) ;; *) pkgs+=("$prog") ;; esac
    done
    echo "installing ${pkgs[*]} (apt-get)" >&2
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi

# The real Claude Code CLI for the end-to-end tests, pinned, into tests/.node (not global).
# A failure here is loud but not fatal on a developer's machine (the e2e tests then
# skip, each saying why); in CI (CI=true) it is fatal, so no e2e test silently skips.
CLAUDE_CODE_VERSION=2.1.332
claude_bin=tests/.node/node_modules/.bin/claude
if [ "$("$claude_bin" --version 2>/dev/null | cut -d' ' -f1)" != "$CLAUDE_CODE_VERSION" ]; then
    if ! command -v npm >/dev/null 2>&1; then
        echo "installing npm (apt-get)" >&2
        SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
        { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq npm >/dev/null; } \
            || echo "WARNING: apt-get could not install npm" >&2
    fi
    if command -v npm >/dev/null 2>&1; then
        echo "installing @anthropic-ai/claude-code@$CLAUDE_CODE_VERSION into tests/.node (npm)" >&2
        npm install --silent --no-audit --no-fund --prefix tests/.node \
            "@anthropic-ai/claude-code@$CLAUDE_CODE_VERSION" >&2 \
            || echo "WARNING: npm could not install Claude Code; the e2e tests will be skipped" >&2
    else
        echo "WARNING: npm is not installed; the Claude Code e2e tests will be skipped" >&2
    fi
fi
if [ "${CI:-}" = "true" ] && ! "$claude_bin" --version >/dev/null 2>&1; then
    echo "ERROR: the Claude Code CLI is required in CI and could not be installed" >&2
    exit 1
fi

# Debian's Chromium for the web view's browser tests (tests/ui), driven by the Python
# playwright package through executable_path (never `playwright install`).
if ! command -v chromium >/dev/null 2>&1; then
    echo "installing chromium (apt-get)" >&2
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null; } \
        || echo "WARNING: apt-get could not install chromium; the browser tests will be skipped" >&2
fi
if [ "${CI:-}" = "true" ] && ! command -v chromium >/dev/null 2>&1; then
    echo "ERROR: chromium is required in CI (the web view's browser tests) and could not be installed" >&2
    exit 1
fi
