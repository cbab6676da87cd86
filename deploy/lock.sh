#!/usr/bin/env bash
# Regenerate the lock files: every package that fleetd's installs take, pinned with hashes.
#   requirements-test.lock  the runtime dependencies, the `test` extra and the build
#                           requirements: the quickstart and CI
#   requirements.lock       the same pins without the test tools: the site installer and the
#                           container image
# fleetd itself is built without build isolation, from the locked setuptools and cffi. One
# universal resolution covers every Python 3.11+ on every platform, by markers.
#
#   bash deploy/lock.sh                         # after editing pyproject.toml: keep other pins
#   bash deploy/lock.sh --upgrade               # the newest releases pyproject.toml allows
#   bash deploy/lock.sh --upgrade-package NAME  # one package
#
# Needs uv (PyPI); without one on PATH it is installed into a throwaway virtualenv.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=python.sh
source deploy/python.sh
python=$(find_python) || { printf 'lock.sh: needs Python 3.11 or newer\n' >&2; exit 1; }

uv=$(command -v uv || true)
if [ -z "$uv" ]; then
    tools=$(mktemp -d)
    trap 'rm -rf "$tools"' EXIT
    "$python" -m venv "$tools"
    "$tools/bin/python" -m pip install --quiet --disable-pip-version-check uv
    uv=$tools/bin/uv
fi

compile() {  # compile OUTPUT [uv options]: pyproject.toml and its build requirements
    local output=$1
    shift
    "$python" -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], sep="\n")' |
        "$uv" pip compile pyproject.toml - --universal --python-version 3.11 --generate-hashes \
            --custom-compile-command "bash deploy/lock.sh" --output-file "$output" --quiet "$@"
}
compile requirements-test.lock --extra test "$@"
# Pinned to what the test lock resolved: the site runs the versions the tests ran.
compile requirements.lock --constraint requirements-test.lock "$@"
