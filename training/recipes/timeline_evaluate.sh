#!/usr/bin/env bash
# Measure timelines and in-betweening (issue 17; docs/timeline.md) on the test split with the
# project's evaluator: MLA-Gen with each way of joining segments, and MoLingo, then one 60 s
# sequence alone in a fresh process for its time and peak memory. Writes OUT/NAME.json.
#
# Usage: training/recipes/timeline_evaluate.sh DATA EVALUATOR OUT
#   DATA: a built data set (python -m training build-dataset); EVALUATOR: an exported
#   evaluator (docs/results.md gives the recipe: train training/configs/evaluator.toml 3,000
#   steps, then python -m training export). Settings (environment): DEVICE (cuda),
#   SEQUENCES (64), SPLIT (test), CHECKPOINT (engine/checkpoints/default), PY (python3).
set -euo pipefail
DATA=${1:?the data set folder}
EVAL=${2:?the exported evaluator folder}
OUT=${3:?where the results go}
DEVICE=${DEVICE:-cuda}
SEQUENCES=${SEQUENCES:-64}
SPLIT=${SPLIT:-test}
CHECKPOINT=${CHECKPOINT:-engine/checkpoints/default}
PY=${PY:-python3}
mkdir -p "$OUT"
run() {  # NAME [timeline options...]
  local name=$1
  shift
  $PY -m training.evaluation.timeline "$CHECKPOINT" --data "$DATA" --evaluator "$EVAL" \
    --split "$SPLIT" --sequences "$SEQUENCES" --device "$DEVICE" "$@" \
    --out "$OUT/$name.json" >"$OUT/$name.log" 2>&1
}
run mlagen-inpaint --generator mlagen --method inpaint
run mlagen-blend --generator mlagen --method blend
run molingo-inpaint --generator molingo --method inpaint
run sixty-mlagen --generator mlagen --sixty-only
run sixty-molingo --generator molingo --sixty-only
