#!/usr/bin/env bash
# Install Unmask into .venv (first run only) and start API + worker with embedded defaults:
# SQLite, a local-folder object store and a broker on the same disk. No servers needed.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/unmask ]; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --upgrade pip 'setuptools>=77'
  .venv/bin/pip install --quiet -e . --config-settings editable_mode=strict
fi
# The parts live at the top level and are linked into the install; relink so new modules count.
.venv/bin/pip install --quiet --no-deps --no-build-isolation -e . --config-settings editable_mode=strict \
  >.venv/relink.log 2>&1 || { cat .venv/relink.log >&2; exit 1; }
exec .venv/bin/unmask up "$@"
