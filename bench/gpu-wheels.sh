#!/usr/bin/env bash
# The wheels a lent GPU machine lacks for bench/gpu.sh, fetched here into .whl/ (ignored by git,
# about 9 MB; the checkout and they together stay under the device call's 64 MiB). The machine's
# python3 is CPython 3.12 with torch, torchvision, numpy, Pillow, OpenCV, scikit-learn,
# matplotlib, prometheus-client and requests; these are the rest of what the benchmark imports,
# at the versions the project installs here.
#
#   bench/gpu-wheels.sh                 # here, with PyPI reachable
#   # then, as the device call's command (carry: [".whl"]):
#   python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl &&
#   python3 -m pip install -q --no-deps --no-build-isolation --target /tmp/site . &&
#   PYTHONPATH=/tmp/site PYTHON=python3 bench/gpu.sh "$OUT"
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
mkdir -p .whl
platform=(--python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
python3 -m pip download -q --no-deps --only-binary=:all: "${platform[@]}" -d .whl \
  facenet-pytorch==2.5.3 ttach==0.0.3 pydantic==2.14.4 pydantic-core==2.50.5 \
  pydantic-settings==2.16.3 python-dotenv==1.2.4 annotated-types==0.8.0 typing-inspection==0.4.5 \
  typing-extensions==4.16.0 sqlalchemy==2.1.9
python3 -m pip wheel -q --no-deps -w .whl grad-cam==1.5.7  # published as a source archive only
ls .whl
