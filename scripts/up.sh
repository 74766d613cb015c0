#!/usr/bin/env bash
# Install Unmask into .venv (first run only) and start API + worker with embedded defaults:
# SQLite, a local-folder object store and a broker on the same disk. No servers needed.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/unmask ]; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --upgrade pip
  .venv/bin/pip install --quiet -e .
fi
exec .venv/bin/unmask up "$@"
