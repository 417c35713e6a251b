#!/usr/bin/env bash
# Device call (issue 18, next attempt): the all-sources SAE and evaluator again, with the text
# encoder able to read every source's captions (session 7 found the slim copy of sessions 5-6
# blank on 202 of their tokens; training now refuses that). Side by side, 3,000 steps each
# (about 210 s on the H200 in session 5), exported to runs/all7/export-{sae,evaluator} (kept
# on the warm machine for train_generators.sh: SAE=runs/all7/export-sae PHASE=1 ...) and sent
# back in 15 MB parts.
# Carried: .carry/{all-pack.npz,minilm-slim}, without engine/checkpoints/default in the tree.
set -uo pipefail
export PYTHONUNBUFFERED=1
C=.carry; R=runs/all7
source training/recipes/device_text_encoder.sh
mkdir -p $R
T0=$(date +%s)
[[ -d $R/data ]] || python3 -m training unpack-dataset $C/all-pack.npz $R/data > $R/unpack.log 2>&1 || exit 1
W="source_weights.deepmimic=6 source_weights.cmu=5"
S="max_steps=3000 warmup_steps=300 ckpt_every=1000 data_root=$R/data num_workers=3 progress=false $W"
python3 -m training train training/configs/sae.toml $S out_dir=$R/sae > $R/sae.log 2>&1 &
python3 -m training train training/configs/evaluator.toml $S out_dir=$R/evaluator > $R/evaluator.log 2>&1 &
wait
echo "trained after $(( $(date +%s) - T0 )) s"; tail -n 2 $R/sae.log $R/evaluator.log
for name in sae evaluator; do
  python3 -m training export $R/$name $R/export-$name >> $R/export.log 2>&1 || { tail $R/export.log; exit 1; }
  tar cf - -C $R export-$name | split -b 15M - $OUT/$name.tar.part-
done
(cd $R && tar czf $OUT/logs.tgz *.log */config.json 2>/dev/null)
echo "exported after $(( $(date +%s) - T0 )) s"
