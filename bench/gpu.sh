#!/usr/bin/env bash
# Every throughput measurement of issue-sized GPU runs in one go, for one lent H100/H200 (about
# eight minutes at the defaults): the reference against Unmask's batch path with JPEGs decoded by
# nvJPEG, the same with Pillow decoding, and two and four worker processes sharing the card.
#
#   bench/gpu.sh [copy-results-to]                       # on the GPU machine, from the repo root
#   DEVICE=cpu IMAGES=8 SIZE=512 bench/gpu.sh /tmp/try   # the same steps on a CPU, to try it
#
# Each run appends its table to bench/RESULTS.md and writes bench/results/throughput-<device>.json;
# a copy of each JSON (and of RESULTS.md) goes to the folder given, for runs whose checkout is
# not kept (the device tool's $OUT).
#
# Not yet run on a GPU. The lent machines' python3 holds torch and torchvision but not all of
# Unmask's needs: bench/gpu-wheels.sh fetches the rest and shows the device call's command.
# Installing the project with `pip install --target` and running this script's steps from there
# was tried on the CPU (PYTHONPATH=/tmp/site).
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=${DEVICE:-cuda}; IMAGES=${IMAGES:-256}; SIZE=${SIZE:-1024}; BATCH=${BATCH:-32}
PY=${PYTHON:-.venv/bin/python}
copy=${1:-}
kind=$([[ $DEVICE == cuda* ]] && echo cuda || echo cpu)

run() {  # label, extra flags
  local label=$1; shift
  echo "== $label" >&2
  PYTHONUNBUFFERED=1 $PY bench/throughput.py --device "$DEVICE" --images "$IMAGES" --size "$SIZE" \
    --batch "$BATCH" "$@"
  if [[ -n $copy ]]; then
    mkdir -p "$copy"
    cp "bench/results/throughput-$kind.json" "$copy/throughput-$kind-$label.json"
    cp bench/RESULTS.md "$copy/RESULTS.md"
  fi
}

run device-decode --decode device
run pillow-decode --decode pillow --skip-single
run device-decode-2proc --decode device --skip-single --processes 2
run device-decode-4proc --decode device --skip-single --processes 4
