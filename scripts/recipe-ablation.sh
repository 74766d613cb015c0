#!/usr/bin/env bash
# Which confound levers help on held-out sources? Trains the small proxy model once per recipe
# with dfdc, yonsei and ffhq_sg2 held out whole, then tabulates held-out metrics.
#   scripts/recipe-ablation.sh DATA_DIR OUT_DIR [RECIPE ...]
# EPOCHS, SAMPLES (per epoch) and BATCH change the budget (default 6 x 6400, batch 64); a
# recipe's own --model and --lr come after the defaults and win.
# Each recipe's run folder is kept; a finished one is skipped, an interrupted one resumes.
# Runs two recipes at a time, one thread each (the data pipeline is single-threaded).
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:?data folder}; out=${2:?output folder}; shift 2
declare -A recipes=(
  [plain]="--no-balance --sbi-ratio 0"
  [plain-sbi25]="--no-balance --sbi-ratio 0.25"
  [balanced]="--balance --sbi-ratio 0"
  [balanced-sbi]="--balance --sbi-ratio 0.5"
  [sbi-only]="--balance --sbi-only --sbi-ratio 0.5"
  [balanced-sbi-adv]="--balance --sbi-ratio 0.5 --source-adversary 0.3"
  [plain-sbi68]="--no-balance --sbi-ratio 0.25 --dense-landmarks"
  [plain-blends68]="--no-balance --sbi-ratio 0.2 --xray-ratio 0.15 --dense-landmarks"
  # InceptionResnetV1 from scratch and EfficientNet-Lite0 from its ImageNet weights, without
  # and with the blends: the recipes of gpu_sweep.sh
  [irv1-plain]="--model unmask-irv1 --lr 1e-3 --no-balance --sbi-ratio 0"
  [irv1-sbi68]="--model unmask-irv1 --lr 1e-3 --no-balance --sbi-ratio 0.3 --dense-landmarks"
  [lite0-plain]="--model unmask-lite0 --lr 5e-4 --no-balance --sbi-ratio 0"
  [lite0-blends]="--model unmask-lite0 --lr 5e-4 --no-balance --sbi-ratio 0.25 --xray-ratio 0.15 --dense-landmarks"
)
names=("$@"); [ ${#names[@]} -gt 0 ] || names=(plain plain-sbi25 balanced balanced-sbi sbi-only balanced-sbi-adv)
run() {
  local name=$1 dir=$out/$1
  [ -f "$dir/metrics.json" ] && return 0
  local resume=""; [ -f "$dir/checkpoint.pt" ] && resume=--resume
  # shellcheck disable=SC2086
  OMP_NUM_THREADS=1 .venv/bin/unmask train --data "$data" --out "$dir" --model unmask-small \
    --epochs "${EPOCHS:-6}" --samples-per-epoch "${SAMPLES:-6400}" --batch-size "${BATCH:-64}" --lr 2e-3 --seed "${SEED:-0}" \
    --val-sources dfdc,yonsei,ffhq_sg2 --cache "${CACHE:-var/cache}" --threads 1 \
    ${recipes[$name]:?unknown recipe $name} $resume >"$dir.log" 2>&1
}
mkdir -p "$out"
# Build the crop cache once, before two runs would race to fill it.
.venv/bin/python -c "import sys, torch; from pathlib import Path
from unmask.detector.registry import MODELS; from unmask.training.fit import load_crops
load_crops(Path(sys.argv[1]), Path(sys.argv[2]), MODELS['unmask-small'], torch.device('cpu'))" \
  "$data" "${CACHE:-var/cache}"
for ((i = 0; i < ${#names[@]}; i += 2)); do
  run "${names[i]}" &
  [ $((i + 1)) -lt ${#names[@]} ] && run "${names[i + 1]}" &
  wait
done
.venv/bin/python scripts/ablation_table.py "$out" "${names[@]}"
