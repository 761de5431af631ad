#!/usr/bin/env bash
# Prepare this machine for Flowline: uv, the workspace's packages, and PostgreSQL's
# server binaries. Idempotent; for Debian, run as root or as a user with sudo.
# Only package registries are needed (PyPI, Debian's apt), no curl-piped installers.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf 'bootstrap: %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        log "root is needed for: $* (run this script as root, or install sudo)"
        return 1
    fi
}

apt_updated=""
apt_install() {
    if ! command -v apt-get >/dev/null 2>&1; then
        log "apt-get not found; install these with your package manager: $*"
        return 1
    fi
    log "installing with apt-get: $*"
    if [ -z "$apt_updated" ]; then
        as_root apt-get update -qq
        apt_updated=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

# pip --user puts console scripts under the user base (~/.local/bin on Linux).
add_user_bin_to_path() {
    local user_base
    export PATH="$HOME/.local/bin:$PATH"
    if command -v python3 >/dev/null 2>&1 && user_base="$(python3 -m site --user-base 2>/dev/null)"; then
        export PATH="$user_base/bin:$PATH"
    fi
}

install_uv() {
    if ! command -v python3 >/dev/null 2>&1; then
        apt_install python3 python3-pip
    elif ! python3 -m pip --version >/dev/null 2>&1; then
        apt_install python3-pip
    fi
    log "installing uv from PyPI with pip"
    # --user first; Debian's Python refuses that without --break-system-packages
    # (PEP 668; uv has no dependencies, so nothing of the system's is touched); inside
    # a virtualenv --user is refused, so a plain install is the last resort.
    python3 -m pip install --quiet --user uv 2>/dev/null ||
        python3 -m pip install --quiet --user --break-system-packages uv 2>/dev/null ||
        python3 -m pip install --quiet uv
}

have_initdb() {
    local bindir
    if command -v pg_config >/dev/null 2>&1 && bindir="$(pg_config --bindir 2>/dev/null)" &&
        [ -x "$bindir/initdb" ]; then
        return 0
    fi
    for initdb in /usr/lib/postgresql/*/bin/initdb; do
        [ -x "$initdb" ] && return 0
    done
    command -v initdb >/dev/null 2>&1
}

add_user_bin_to_path
if ! command -v make >/dev/null 2>&1; then
    apt_install make
fi
if ! command -v uv >/dev/null 2>&1; then
    install_uv
    add_user_bin_to_path
    hash -r
    if ! command -v uv >/dev/null 2>&1; then
        log "uv was installed but is not on PATH; add \"$HOME/.local/bin\" to PATH"
        exit 1
    fi
fi

uv sync --all-groups

if ! have_initdb; then
    # The server binaries only: Flowline runs its own cluster (flowline-dev, the tests)
    # and never uses the system one the package may set up.
    apt_install postgresql
    have_initdb || { log "PostgreSQL was installed but initdb is still not found"; exit 1; }
fi

if ! command -v chromium >/dev/null 2>&1; then
    # The browser the console's tests drive (tests/ui, with Playwright's executable_path): Debian's own, as
    # Playwright's browser download is not reachable from every machine.
    apt_install chromium
    command -v chromium >/dev/null 2>&1 || { log "chromium was installed but is not on PATH"; exit 1; }
fi
