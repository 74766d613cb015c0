#!/usr/bin/env bash
# Leave-one-source-out sweep of the small proxy model with the shipped recipe (labelled fakes,
# uniform sampling, no self-blending): one model per source, two processes at a time.
#   scripts/loso-sweep.sh DATA_DIR OUT_DIR
# Finished sources are skipped and an interrupted one resumes, so the sweep can span sessions.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:?data folder}; out=${2:?output folder}
sources=$(.venv/bin/python -c "
import sys
from unmask.training.dataset import scan_labelled
print(' '.join(sorted({i.source for i in scan_labelled(sys.argv[1])})))" "$data")
read -ra all <<<"$sources"
half=$(((${#all[@]} + 1) / 2))
sweep() {
  OMP_NUM_THREADS=1 .venv/bin/unmask train --data "$data" --out "$out" --model unmask-small --loso \
    --val-sources "$1" --epochs 6 --samples-per-epoch 6400 --batch-size 64 --lr 2e-3 --seed 0 \
    --no-balance --sbi-ratio 0 --cache "${CACHE:-var/cache}" --threads 1
}
mkdir -p "$out"
first=$(IFS=,; echo "${all[*]:0:half}"); second=$(IFS=,; echo "${all[*]:half}")
sweep "$first" >"$out/sweep-1.log" 2>&1 &
sweep "$second" >"$out/sweep-2.log" 2>&1 &
wait
sweep "$(IFS=,; echo "${all[*]}")" >"$out/sweep-final.log" 2>&1  # every source done: writes the table
cat "$out/LOSO.md"
