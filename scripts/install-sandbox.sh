#!/usr/bin/env bash
# bubblewrap, the sandbox the evolve cycle runs model-written code in (must_pass).
# Part of the README's quick start: a no-op when `bwrap` is already installed; on
# Debian/Ubuntu it installs the `bubblewrap` package. Where it cannot, it says so and
# exits 0: the run itself then refuses must_pass before any model call and says how
# to fix it (see docs/evolve.md#threat-model).
set -uo pipefail
command -v bwrap >/dev/null 2>&1 && exit 0
if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "installing bubblewrap, the sandbox for model-written code (apt-get)" >&2
    if $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
        $SUDO apt-get install -y -qq bubblewrap >/dev/null; then
        exit 0
    fi
fi
echo "note: could not install bubblewrap (bwrap); install it with your package manager" \
     "(it is Linux-only), or see docs/evolve.md#threat-model to opt out" >&2
exit 0
