#!/usr/bin/env bash
# Install fleetd as a systemd service on a site host, from this repository checkout.
#
#   sudo bash deploy/systemd/install.sh            # install or upgrade, then start
#   bash deploy/systemd/install.sh --dry-run       # print every step, change nothing
#
# Steps: Debian build packages if missing (python3-venv, python3-dev, gcc), a virtualenv at
# $FLEETD_PREFIX/venv (default /opt/fleetd/venv) with the packages pinned in requirements.lock
# and fleetd built from this checkout (the C core compiles here), the site template
# deploy/systemd/fleetd.toml as /etc/fleetd/fleetd.toml only if none is there, the unit in
# /etc/systemd/system, daemon-reload, then enable --now once the config passes check-config.
# A new template does not pass until its job source is filled in: the script then stops
# there, says what to do, and exits 0. Running it again upgrades the code and restarts
# fleetd; it never overwrites a config, and stops on an existing one that does not pass.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PREFIX=${FLEETD_PREFIX:-/opt/fleetd}
ETC=${FLEETD_ETC:-/etc/fleetd}
UNIT_DIR=${FLEETD_UNIT_DIR:-/etc/systemd/system}
VENV=$PREFIX/venv
DRY_RUN=0

usage() { sed -n '2,14s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"; }

for arg in "$@"; do
    case $arg in
        --dry-run|-n) DRY_RUN=1 ;;
        --help|-h) usage; exit 0 ;;
        *) printf 'install.sh: unknown option %s\n' "$arg" >&2; usage >&2; exit 64 ;;
    esac
done

log() { printf 'install: %s\n' "$*"; }
run() {
    if [ "$DRY_RUN" -eq 1 ]; then
        printf 'would run: %s\n' "$*"
    else
        log "$*"
        "$@"
    fi
}

if [ "$DRY_RUN" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
    printf 'install.sh: must run as root (it writes %s, %s and %s and runs systemctl).\n' \
        "$PREFIX" "$ETC" "$UNIT_DIR" >&2
    printf 'install.sh: try: sudo bash %s   (or --dry-run to see the steps)\n' "$0" >&2
    exit 1
fi
[ "$DRY_RUN" -eq 1 ] && log "dry run: nothing is changed"

# 1. Build prerequisites: the cffi core compiles against the Python headers.
# shellcheck source=../python.sh
source "$REPO/deploy/python.sh"
missing=()
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
PYTHON=$(find_python) || { printf 'install.sh: fleetd needs Python 3.11 or newer\n' >&2; exit 1; }
"$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
[ -f "$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h" ] || missing+=(python3-dev)
if [ ${#missing[@]} -gt 0 ]; then
    command -v apt-get >/dev/null 2>&1 || {
        printf 'install.sh: install %s with your package manager first\n' "${missing[*]}" >&2
        exit 1
    }
    run apt-get update -qq
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi

# 2. Code: the locked packages, then fleetd built from this checkout with the locked
# setuptools and cffi (re-running upgrades it in place).
if [ -x "$VENV/bin/python" ]; then
    log "virtualenv $VENV exists: upgrading fleetd in it"
else
    run "$PYTHON" -m venv "$VENV"
fi
pip=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
run "${pip[@]}" --require-hashes -r "$REPO/requirements.lock"
run "${pip[@]}" --no-deps --no-build-isolation --force-reinstall "$REPO"
run install -m 0644 "$REPO/README.md" "$REPO/deploy/fleetd.example.toml" "$PREFIX/"

# 3. Configuration: the site template only when there is no config yet.
CONFIG=$ETC/fleetd.toml
run install -d -m 0755 "$ETC"
new_config=0
if [ -e "$CONFIG" ]; then
    log "keeping existing $CONFIG"
else
    run install -m 0644 "$REPO/deploy/systemd/fleetd.toml" "$CONFIG"
    new_config=1
fi
config_ok=1
run "$VENV/bin/fleetd" check-config "$CONFIG" || config_ok=0
if [ "$config_ok" -eq 0 ] && [ "$new_config" -eq 0 ]; then
    printf 'install.sh: %s has the problems above: fix them, then run this script again\n' "$CONFIG" >&2
    exit 1
fi

# 4. Service: started only with a config that passes.
was_active=0
[ "$DRY_RUN" -eq 0 ] && systemctl is-active --quiet fleetd 2>/dev/null && was_active=1
run install -m 0644 "$REPO/deploy/systemd/fleetd.service" "$UNIT_DIR/fleetd.service"
run systemctl daemon-reload
if [ "$config_ok" -eq 0 ]; then
    log "fleetd is installed but not started: $CONFIG is a template to fill in (its problems are above)."
    log "next: 1. edit $CONFIG: [source.bitcoind] url, cookie_file and payout_address, or [source.upstream]"
    log "      2. check it: $VENV/bin/fleetd check-config $CONFIG"
    log "      3. start it: systemctl enable --now fleetd"
    exit 0
fi
[ "$DRY_RUN" -eq 1 ] && [ "$new_config" -eq 1 ] &&
    log "a new $CONFIG passes check-config only once filled in: until then the install stops before this step"
run systemctl enable --now fleetd.service
[ "$was_active" -eq 1 ] && run systemctl restart fleetd.service
log "done: systemctl status fleetd; journalctl -u fleetd -f; curl -s http://127.0.0.1:9550/healthz"
