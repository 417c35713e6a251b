#!/usr/bin/env bash
# Score the runs of bandai_train.sh on the test split with the project's evaluator, the
# protocol of SPEC section 4 (batches of 32, REPLICATIONS replications, 95% intervals), every
# row in its own process on the one GPU. Writes RESULTS/NAME.json and RESULTS/NAME.md.
#
# Each row draws all its replications first, then generates their clips together, length by
# length, PROMPTS_PER_CALL clips per generate() call (lower it if the GPU runs out of memory),
# and reports the seconds of each phase (RESULTS/NAME.json: settings.phase_seconds).
#
# Usage: training/recipes/bandai_evaluate.sh RUNS RESULTS
# Settings (environment): REPLICATIONS (20), PROMPTS_PER_CALL (256), PY, ROWS (7: rows at
#   once, for the CPU threads each gets),
#   EXTRA (e.g. "--device cpu", or "--sampling steps=25" for every row), DATA (the data set
#   scored, default RUNS/data: set it to the Bandai data set to score runs trained on a
#   combined set on today's Bandai test split).
set -euo pipefail
RUNS=${1:?the RUNS folder of bandai_train.sh}
RESULTS=${2:-$RUNS/results}
PY=${PY:-python3}
REPLICATIONS=${REPLICATIONS:-20}
PROMPTS_PER_CALL=${PROMPTS_PER_CALL:-256}
EXTRA=${EXTRA:-}
DATA=${DATA:-$RUNS/data}
mkdir -p "$RESULTS"
# Rows run side by side: give each process its share of the CPU cores. With every process
# free to use all of them, the scoring (0.08 s a replication alone on a 2-core VM) took
# 13 s a replication with four rows on a 16-core GPU machine: BLAS and torch threads of the
# rows fighting over the cores. With this limit: 1.3 s for 20 replications (3 rows, H200).
ROWS=${ROWS:-7}
THREADS=$(($(nproc) / ROWS > 0 ? $(nproc) / ROWS : 1))
export OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS
pids=()
row() {  # NAME CHECKPOINT [evaluate options...]; a checkpoint that was not trained is skipped
  local name=$1 checkpoint=$2
  shift 2
  [[ -d $checkpoint ]] || return 0
  # shellcheck disable=SC2086
  $PY -m training evaluate "$checkpoint" --data "$DATA" --evaluator "$RUNS/export/evaluator" \
    --replications "$REPLICATIONS" --prompts-per-call "$PROMPTS_PER_CALL" \
    --out "$RESULTS/$name.json" --markdown "$RESULTS/$name.md" "$@" $EXTRA \
    >"$RESULTS/$name.log" 2>&1 &
  pids+=($!)
}
row molingo "$RUNS/export/molingo"
row mlagen "$RUNS/export/mlagen"
row molingo-adaln "$RUNS/export/molingo-adaln" --no-mm
row molingo-vae "$RUNS/export/molingo-vae" --no-mm
row molingo-sae "$RUNS/export/molingo-sae" --no-mm
row mlagen-cfg "$RUNS/export/mlagen" --sampling mode=cfg --no-mm
row mlagen-nosink "$RUNS/export/mlagen-nosink" --no-mm
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
if ((failed)); then tail -n 20 "$RESULTS"/*.log; exit 1; fi
for json in "$RESULTS"/*.json; do  # where each row's time went
  $PY -c 'import json, sys; s = json.load(open(sys.argv[1]))["settings"]
print(sys.argv[1], s["seconds"], "s in all;", s.get("generate_calls"), "generate calls;",
      s.get("phase_seconds"))' "$json"
done
cat "$RESULTS"/molingo.md "$RESULTS"/mlagen.md
