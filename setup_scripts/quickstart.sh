#!/usr/bin/env bash
# Installs xmanager into ./.venv and runs the quickstart sweep on the local executor and
# the embedded SQLite store (in ~/.local/share/xmanager unless XM_DATA_DIR is set).
source "$(dirname "${BASH_SOURCE[0]}")/_venv.sh" ""
.venv/bin/xmanager launch examples/quickstart.py
