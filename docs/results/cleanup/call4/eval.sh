#!/usr/bin/env bash
# Device call (session 6, issue 12; optional): the swing clearance (now the default) on test, 20 replications, against
# the session-5 default (--cleanup clearance=0) and the raw rows of the same run; MoLingo too (its FID with the clearance
# was not measured on the CPU). Run from the repository root with the .carry folder of call3: OUT=... bash docs/results/cleanup/call4/eval.sh
set -uo pipefail
export PYTHONUNBUFFERED=1
C=.carry
source training/recipes/device_text_encoder.sh
python3 -m training unpack-dataset $C/bandai-pack.npz /tmp/data > $OUT/unpack.log 2>&1 || { tail $OUT/unpack.log; exit 1; }
T0=$(date +%s)
python3 -m training train training/configs/evaluator.toml max_steps=3000 warmup_steps=300 ckpt_every=3000 \
  out_dir=/tmp/runs/evaluator data_root=/tmp/data num_workers=4 progress=false > $OUT/evaluator.log 2>&1 || { tail -20 $OUT/evaluator.log; exit 1; }
python3 -m training export /tmp/runs/evaluator /tmp/evaluator || exit 1
echo "evaluator ready after $(( $(date +%s) - T0 )) s"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
R=/tmp/results; mkdir -p $R
row() { local name=$1 reps=$2; shift 2
  python3 -m training evaluate engine/checkpoints/default --data /tmp/data --evaluator /tmp/evaluator \
    --out $R/$name.json --markdown $R/$name.md --no-mm --replications $reps "$@" > $R/$name.log 2>&1 & }
row test-mlagen-raw 20 --raw
row test-mlagen-s5 20 --cleanup clearance=0
row test-mlagen-clean 20
row test-molingo-raw 20 --raw --generator molingo
row test-molingo-s5 20 --generator molingo --cleanup clearance=0
row test-molingo-clean 20 --generator molingo
( while sleep 45; do (cd $R && tar czf $OUT/results.tgz *.json *.md *.log 2>/dev/null); done ) &
SAVER=$!
wait $(jobs -p | grep -v "^$SAVER$")
kill $SAVER
echo "rows done after $(( $(date +%s) - T0 )) s"
(cd $R && tar czf $OUT/results.tgz *.json *.md *.log)
python3 - <<'PY'
import json, glob
for f in sorted(glob.glob("/tmp/results/*.json")):
    d = json.load(open(f))
    for row in ("real", "generated"):
        r = d["rows"].get(row)
        g = lambda k: f'{r[k]["mean"]:.3f}' if r.get(k) else "-"
        print(f"{f.split('/')[-1][:-5]:18s} {row[:4]} FID {g('fid')} R1 {g('top1')} match {g('matching')} bv {g('bone_var_max')} skate {g('skating')} pen {g('penetration_cm')} float {g('floating_cm')} acc {g('accel')} jerk {g('jerk')}")
PY
