#!/usr/bin/env bash
# Installs everything the tests need into ./.venv, then runs the linter and the test suite.
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh" test
source setup_scripts/_system.sh
apt_install rsync  # `xmanager sweep push/pull` is tested with a real rsync.
.venv/bin/ruff check .
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
[ "$status" -eq 5 ] && { echo "pytest collected no tests" >&2; exit 1; }
exit "$status"
