#!/usr/bin/env bash
# Leave-one-source-out sweep of the candidate recipes over dfdc, yonsei and ffhq_sg2, then the
# best recipe trained on every source and given thresholds from its folds' out-of-source scores.
# Made for one GPU run of about ten minutes, from crops packed by `python -m unmask.training.pack`
# (the images themselves do not travel to the GPU machine):
#
#   scripts/gpu_sweep.sh crops.npz runs/sweep            # on the GPU machine
#   EPOCHS=1 SAMPLES=256 RECIPES=irv1-plain DEVICE=cpu scripts/gpu_sweep.sh crops.npz runs/try
#
# Each recipe's table is runs/sweep/<recipe>/LOSO.md, all of them side by side in
# runs/sweep/RECIPES.md; the shipped candidate is runs/sweep/final/<model>.pt with its
# thresholds report. Finished folds are skipped, so an interrupted sweep continues.
set -euo pipefail
cd "$(dirname "$0")/.."
pack=${1:?packed crop file}; out=${2:?output folder}
EPOCHS=${EPOCHS:-8}; SAMPLES=${SAMPLES:-6000}; DEVICE=${DEVICE:-cuda}; BATCH=${BATCH:-64}
FOLDS=${FOLDS:-dfdc,yonsei,ffhq_sg2}
RECIPES=${RECIPES:-"irv1-plain irv1-sbi68 lite0-plain lite0-blends"}
PY=${PYTHON:-.venv/bin/python}

flags() {  # recipe name -> model and levers
  case "$1" in
    irv1-plain) echo "--model unmask-irv1 --sbi-ratio 0 --lr 1e-3" ;;
    irv1-sbi68) echo "--model unmask-irv1 --sbi-ratio 0.3 --dense-landmarks --lr 1e-3" ;;
    lite0-plain) echo "--model unmask-lite0 --sbi-ratio 0 --lr 5e-4" ;;
    lite0-blends) echo "--model unmask-lite0 --sbi-ratio 0.25 --xray-ratio 0.15 --dense-landmarks --lr 5e-4" ;;
    *) echo "unknown recipe $1" >&2; exit 2 ;;
  esac
}

train() {  # recipe, output folder, extra flags
  local recipe=$1 dir=$2; shift 2
  # shellcheck disable=SC2046
  $PY -m unmask train --data "$pack" --out "$dir" $(flags "$recipe") --epochs "$EPOCHS" \
    --samples-per-epoch "$SAMPLES" --batch-size "$BATCH" --device "$DEVICE" --no-balance "$@"
}

mkdir -p "$out"
for recipe in $RECIPES; do
  start=$(date +%s)
  train "$recipe" "$out/$recipe" --loso --val-sources "$FOLDS" >"$out/$recipe.log" 2>&1
  echo "$recipe: $(( $(date +%s) - start )) s" | tee -a "$out/timings.txt"
done

# Recipes side by side (held-out AUC per fold), and the best by mean AUC.
best=$($PY - "$out" $RECIPES <<'PY'
import json, sys
from pathlib import Path
out, recipes = Path(sys.argv[1]), sys.argv[2:]
folds = ["dfdc", "yonsei", "ffhq_sg2"]
rows = ["| recipe | " + " | ".join(f"{f} AUC" for f in folds) + " | mean |", "|---" * 5 + "|"]
scores = {}
for recipe in recipes:
    path = out / recipe / "loso.json"
    loso = json.loads(path.read_text()) if path.exists() else {}
    aucs = [loso.get(f, {}).get("auc") for f in folds]
    known = [a for a in aucs if a is not None]
    scores[recipe] = sum(known) / len(known) if known else -1
    rows.append(f"| {recipe} | " + " | ".join("–" if a is None else f"{a:.3f}" for a in aucs)
                + f" | {scores[recipe]:.3f} |")
(out / "RECIPES.md").write_text("\n".join(rows) + "\n")
print(max(scores, key=scores.get))
PY
)
echo "best recipe: $best"
train "$best" "$out/final" >"$out/final.log" 2>&1
model=$(flags "$best" | awk '{print $2}')
$PY -m unmask calibrate "$out/$best"/loso-*/out-of-source --weights "$out/final/$model.pt" \
  --out "$out/final/$model-calibrated.pt" | tee "$out/final/thresholds.txt"
cat "$out/RECIPES.md"
# Files come back from the GPU machine in pieces of at most 16 MiB: `cat part-* > file` rejoins.
split -b 15M "$out/final/$model-calibrated.pt" "$out/final/$model-calibrated.pt.part-"
