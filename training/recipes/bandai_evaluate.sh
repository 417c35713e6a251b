#!/usr/bin/env bash
# Score the runs of bandai_train.sh on the test split with the project's evaluator, the
# protocol of SPEC section 4 (batches of 32, REPLICATIONS replications, 95% intervals), every
# row in its own process on the one GPU. Writes RESULTS/NAME.json and RESULTS/NAME.md.
#
# Usage: training/recipes/bandai_evaluate.sh RUNS RESULTS
# Settings (environment): REPLICATIONS (20), PY, EXTRA (e.g. "--device cpu").
set -euo pipefail
RUNS=${1:?the RUNS folder of bandai_train.sh}
RESULTS=${2:-$RUNS/results}
PY=${PY:-python3}
REPLICATIONS=${REPLICATIONS:-20}
EXTRA=${EXTRA:-}
mkdir -p "$RESULTS"
pids=()
row() {  # NAME CHECKPOINT [evaluate options...]; a checkpoint that was not trained is skipped
  local name=$1 checkpoint=$2
  shift 2
  [[ -d $checkpoint ]] || return 0
  # shellcheck disable=SC2086
  $PY -m training evaluate "$checkpoint" --data "$RUNS/data" --evaluator "$RUNS/export/evaluator" \
    --replications "$REPLICATIONS" --out "$RESULTS/$name.json" --markdown "$RESULTS/$name.md" \
    "$@" $EXTRA >"$RESULTS/$name.log" 2>&1 &
  pids+=($!)
}
row molingo "$RUNS/export/molingo"
row mlagen "$RUNS/export/mlagen"
row molingo-adaln "$RUNS/export/molingo-adaln" --no-mm
row molingo-vae "$RUNS/export/molingo-vae" --no-mm
row molingo-sae "$RUNS/export/molingo-sae" --no-mm
row mlagen-cfg "$RUNS/export/mlagen" --mode cfg --no-mm
row mlagen-nosink "$RUNS/export/mlagen-nosink" --no-mm
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
if ((failed)); then tail -n 20 "$RESULTS"/*.log; exit 1; fi
cat "$RESULTS"/molingo.md "$RESULTS"/mlagen.md
