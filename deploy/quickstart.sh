#!/usr/bin/env bash
# One command from a fresh machine to a running fleetd: system packages, a virtualenv
# with the packages pinned in requirements-test.lock and fleetd built from source (the C
# core compiles on install), then the demo or the test suite. A virtualenv that is already
# up to date is used as it is.
#
#   bash deploy/quickstart.sh demo [fleetd demo options]
#   bash deploy/quickstart.sh test [pytest options]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV=${FLEETD_VENV:-.venv}

log() { printf 'quickstart: %s\n' "$*" >&2; }

# Debian packages by the command that proves they are installed.
SYSTEM_PACKAGES=(
    "gcc:gcc"
    "promtool:prometheus"  # promtool check metrics, promtool test rules, a real Prometheus in tests
    "systemd-analyze:systemd"  # systemd-analyze verify/security on deploy/systemd/fleetd.service
    "amtool:prometheus-alertmanager"  # amtool check-config on the Alertmanager example
    # cpuminer's build (tests mine against fleetd with a real minerd): autotools, make, libcurl
    "make:make"
    "autoconf:autoconf"
    "automake:automake"
    "curl-config:libcurl4-openssl-dev"  # the -dev package's own command proves its headers are there
    # independent TLS clients in the tests: openssl s_client on Stratum over TLS, curl on HTTPS
    "openssl:openssl"
    "curl:curl"
    "chromium:chromium"  # headless, driven by playwright: the site page's tests and its benchmark
)

install_system_packages() {
    local missing=() entry
    for entry in "${SYSTEM_PACKAGES[@]}"; do
        command -v "${entry%%:*}" >/dev/null 2>&1 || missing+=("${entry#*:}")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if ! command -v apt-get >/dev/null 2>&1; then
        log "missing ${missing[*]} and no apt-get here: install them with your package manager"
        exit 1
    fi
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    log "installing ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# shellcheck source=python.sh
source deploy/python.sh

# What the virtualenv was built from: the pinned packages, the build and the C core. The
# Python sources are not in it: the install is editable, so they are used as they stand.
install_inputs_hash() {
    sha256sum requirements-test.lock pyproject.toml setup.py fleetd/_native_build.py native/* | sha256sum | cut -d' ' -f1
}

install_fleetd() {
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating virtualenv $VENV"
        local python
        python=$(find_python) || { log "fleetd needs Python 3.11 or newer"; exit 1; }
        "$python" -m venv "$VENV"
    fi
    local stamp=$VENV/.fleetd-install-inputs inputs
    inputs=$(install_inputs_hash)
    if [ "$(cat "$stamp" 2>/dev/null)" = "$inputs" ] && [ -x "$VENV/bin/fleetd" ] &&
        "$VENV/bin/python" -c 'import fleetd._native' 2>/dev/null; then
        log "$VENV is up to date with requirements-test.lock and native/"
        return 0
    fi
    log "installing requirements-test.lock and fleetd into $VENV (compiles native/)"
    local pip=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
    "${pip[@]}" --require-hashes -r requirements-test.lock
    # Built from the locked setuptools and cffi: no unpinned build environment.
    "${pip[@]}" --no-deps --no-build-isolation --editable .
    echo "$inputs" >"$stamp"
}

command=${1:-}
shift || true
case "$command" in
    demo)
        install_system_packages
        install_fleetd
        exec "$VENV/bin/fleetd" demo "$@"
        ;;
    test)
        install_system_packages
        install_fleetd
        "$VENV/bin/fleetd" version
        exec "$VENV/bin/python" -m pytest "$@"
        ;;
    *)
        echo "usage: bash deploy/quickstart.sh demo|test [options]" >&2
        exit 2
        ;;
esac
