#!/usr/bin/env bash
# System programs and the npm-installed Claude Code CLI used by the end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for prog in git tmux dot; do
    command -v "$prog" >/dev/null 2>&1 || need+=("$prog")
done
if ((${#need[@]})); then
    pkgs=()
    for prog in "${need[@]}"; do
        case "$prog" in dot) pkgs+=(graphviz) ;; *) pkgs+=("$prog") ;; esac
    done
    echo "installing ${pkgs[*]} (apt-get)" >&2
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${pkgs[@]}" >/dev/null
fi
