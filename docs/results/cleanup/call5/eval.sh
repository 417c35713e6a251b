#!/usr/bin/env bash
# Device call (session 7, issue 12): the default clean-up with its new smoothing (Gaussian,
# sigma 0.6 frames) on test, 20 replications, against session 6's default
# (--cleanup smoothing=0) and the raw output, for both generators of the shipped checkpoint.
# Uses the Bandai Namco build and the Bandai-only evaluator left on the machine by the call
# before it (docs/results/all-sources/train_generators.sh, PHASE=2: /tmp/bandai, /tmp/ev;
# the same weights as every evaluator of docs/results.md's clean-motion rows), or makes them:
#   carry .carry/bandai-pack.npz runs/all-session5/export-evaluator-bandai (+ .carry/minilm-slim)
# Run from the repository root: OUT=... bash docs/results/cleanup/call5/eval.sh
set -uo pipefail
export PYTHONUNBUFFERED=1
source training/recipes/device_text_encoder.sh
[[ -d /tmp/bandai ]] || python3 -m training unpack-dataset .carry/bandai-pack.npz /tmp/bandai \
  > $OUT/unpack.log 2>&1 || { tail $OUT/unpack.log; exit 1; }
[[ -d /tmp/ev ]] || cp -r runs/all-session5/export-evaluator-bandai /tmp/ev || exit 1
T0=$(date +%s)
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
R=/tmp/results12; mkdir -p $R
row() { local name=$1; shift
  python3 -m training evaluate engine/checkpoints/default --data /tmp/bandai --evaluator /tmp/ev \
    --out $R/$name.json --markdown $R/$name.md --no-mm --replications 20 "$@" > $R/$name.log 2>&1 & }
row test-mlagen-raw --raw
row test-mlagen-s6 --cleanup smoothing=0
row test-mlagen-clean
row test-molingo-raw --raw --generator molingo
row test-molingo-s6 --generator molingo --cleanup smoothing=0
row test-molingo-clean --generator molingo
( while sleep 45; do (cd $R && tar czf $OUT/results.tgz *.json *.md *.log 2>/dev/null); done ) &
SAVER=$!
wait $(jobs -p | grep -v "^$SAVER$")
kill $SAVER
echo "rows done after $(( $(date +%s) - T0 )) s"
(cd $R && tar czf $OUT/results.tgz *.json *.md *.log)
for f in $R/*.json; do python3 docs/results/cleanup/call5/summary.py $f; done
