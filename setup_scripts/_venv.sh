# Sourced by the other scripts: makes ./.venv with Python >= 3.11 and installs the project
# with the extras named in $1 (e.g. "test"; "" for none), as a regular install, or as an editable one
# (the tests run the source tree) when $2 is "editable".
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "setup: Python 3.11 or newer is needed (found: $("$PYTHON" --version 2>&1))" >&2
  exit 1
fi
if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
  echo "setup: installing python3-venv" >&2
  apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# The pip that ships with Python 3.11 resolves the cloud SDKs' dependency tree very slowly.
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade "pip>=24.1"
target="."
[ -n "${1:-}" ] && target=".[$1]"
if [ "${2:-}" = editable ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$target"
else  # A regular install: no editable-install warnings from setuptools, nothing tied to this folder's layout.
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "$target"
fi
