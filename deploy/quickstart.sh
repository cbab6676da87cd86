#!/usr/bin/env bash
# One command from a fresh machine to a running fleetd: system packages, a
# virtualenv with fleetd built from source (the C core compiles on install),
# then the demo or the test suite.
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

install_fleetd() {
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating virtualenv $VENV"
        local python
        python=$(find_python) || { log "fleetd needs Python 3.11 or newer"; exit 1; }
        "$python" -m venv "$VENV"
    fi
    log "installing fleetd and its test tools into $VENV (compiles native/)"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[test]"
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
