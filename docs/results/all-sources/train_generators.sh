#!/usr/bin/env bash
# Device calls (session 6, issue 18): the two generators on Bandai + DeepMimic + CMU, from the
# autoencoder trained in session 5's call (train.sh, exported to runs/all-session5/export-sae).
#   PHASE=1: unpack, train both side by side; stops itself before the call's 600 s limit
#            (checkpoints every 500 steps, so a stopped run resumes with --resume).
#   PHASE=2: finish both (--resume), export (bf16, MLA-Gen default, shipped sampling defaults),
#            score on the Bandai test split with the Bandai-only evaluator (20 replications),
#            and send the checkpoint back in 15 MB parts.
# Carried: PHASE=1 .carry/{all-pack.npz,minilm-slim} runs/all-session5/export-sae;
#          PHASE=2 (the call right after, on the warm machine) .carry/bandai-pack.npz
#          runs/all-session5/export-evaluator-bandai. Either call without engine/checkpoints/default
#          in the tree (moved aside for the call) to stay under the 64 MiB carry limit.
#   PHASE=once (session 8: a warm machine is not promised between calls): train STEPS steps
#            (4000 took 336 s with the unpack), export and send back, all in one call; carried:
#            .carry/{all-pack.npz,minilm-slim} and the SAE folder (SAE=runs/all7/export-sae).
#   SCORE=0 with PHASE=2/once: finish, export and send back only (score in a call of its own
#            or on a CPU: session 8 ran `training evaluate` on runs/all7/ship, 10 replications).
set -uo pipefail
export PYTHONUNBUFFERED=1
C=.carry; R=${RUN:-runs/all6}; S=runs/all-session5
SAE=${SAE:-$S/export-sae}  # train_sae.sh leaves runs/all7/export-sae
source training/recipes/device_text_encoder.sh
mkdir -p $R
T0=$(date +%s)
W=${WEIGHTS:-"source_weights.deepmimic=6 source_weights.cmu=5"}  # how often the small sources are drawn
G="max_steps=${STEPS:-6000} batch_size=256 warmup_steps=200 ckpt_every=500 autoencoder=$SAE $W"
LIMIT=${LIMIT:-540}; PHASE=${PHASE:-1}
train() { local name=$1 config=$2; shift 2
  timeout -s INT $(( LIMIT - ($(date +%s) - T0) )) python3 -m training train $config "$@" \
    >> $R/$name.log 2>&1 & }
if [[ $PHASE == 1 || $PHASE == once ]]; then
  [[ -d $R/data ]] || python3 -m training unpack-dataset $C/all-pack.npz $R/data > $R/unpack.log 2>&1 || exit 1
  echo "unpacked after $(( $(date +%s) - T0 )) s"
  train mlagen training/configs/mlagen.toml $G out_dir=$R/mlagen data_root=$R/data num_workers=3 progress=false
  train molingo training/configs/molingo.toml $G out_dir=$R/molingo data_root=$R/data num_workers=3 progress=false
  wait
  echo "phase 1 stopped after $(( $(date +%s) - T0 )) s"; grep -h "step" $R/mlagen.log | tail -1; grep -h "step" $R/molingo.log | tail -1
  ls $R/mlagen $R/molingo
  [[ $PHASE == once ]] || exit 0
else  # PHASE 2
  for name in mlagen molingo; do
    train $name training/configs/$name.toml out_dir=$R/$name --resume
  done
  wait
fi
echo "trained after $(( $(date +%s) - T0 )) s"; tail -n 2 $R/mlagen.log $R/molingo.log
python3 -m training export $R/molingo $R/mlagen $R/ship --bf16 > $R/export.log 2>&1 || { tail $R/export.log; exit 1; }
python3 - "$R/ship/config.json" <<'PY'
import json, sys
p = sys.argv[1]; c = json.load(open(p)); m = c["metadata"]
m["generator"] = "mlagen"
m["sampling_defaults"] = {
    "molingo": {"guidance": 5.5, "steps": 32, "ar_steps": 4, "method": "euler"},
    "mlagen": {"guidance": 4.0, "steps": 25, "mode": "sink_ctrl", "method": "euler"},
}
json.dump(c, open(p, "w"), indent=2)
PY
echo "exported after $(( $(date +%s) - T0 )) s"
tar cf - -C $R ship | split -b 15M - $OUT/ship.tar.part-
(cd $R && tar czf $OUT/logs.tgz *.log */config.json 2>/dev/null)
[[ ${SCORE:-1} == 1 ]] || exit 0  # SCORE=0: scored in a call of its own (session 8)
[[ -d /tmp/bandai ]] || python3 -m training unpack-dataset $C/bandai-pack.npz /tmp/bandai > $R/unpack-bandai.log 2>&1
[[ -d /tmp/ev ]] || cp -r $S/export-evaluator-bandai /tmp/ev  # kept for the next call (cleanup/call5)
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
E=/tmp/eval6; mkdir -p $E
row() { local name=$1 ckpt=$2; shift 2
  python3 -m training evaluate $ckpt --data /tmp/bandai --evaluator /tmp/ev \
    --out $E/$name.json --markdown $E/$name.md --no-mm --replications ${REPS:-20} "$@" > $E/$name.log 2>&1 & }
row test-all-mlagen $R/ship
row test-all-molingo $R/ship --generator molingo
row test-all-mlagen-raw $R/ship --raw
wait
echo "scored after $(( $(date +%s) - T0 )) s"
(cd $E && tar czf $OUT/results.tgz *.json *.md *.log)
