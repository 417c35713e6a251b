#!/usr/bin/env bash
# Device call (session 9, issue 18): why the all-sources generators lose Bandai FID. On the CPU
# (docs/results.md "All sources, shipped (session 9)"), session 8's
# all-sources SAE alone reconstructs the Bandai test split at FID 0.033 under the Bandai
# evaluator, the shipped SAE at 0.015: the generators (0.031 / 0.014) sit on their SAE's
# floor. Two candidate SAEs, side by side, STEPS steps each on all sources:
#   ft-default: the shipped SAE (autoencoder only, .carry/default-sae) fine-tuned, keeping
#               its Bandai Mean/Std (finetune.py's default);
#   cont-all7:  session 8's all-sources SAE trained on (its all-sources Mean/Std).
# Exported fp32 and sent back in 15 MB parts for the CPU checks (reconstruction FID on Bandai,
# joint error per source) that pick the SAE the generators train on next.
# .carry/default-sae is the Bandai-only default's autoencoder alone (9.6 MB instead of 36):
#   git worktree add /tmp/old fa05635 (the checkpoint shipped until session 8 is its default), then
#   python training/recipes/extract_models.py /tmp/old/engine/checkpoints/default .carry/default-sae --model autoencoder
# Carried: .carry/{all-pack.npz,minilm-slim,default-sae} runs/all7/export-sae, without
# engine/checkpoints/default in the tree (64 MiB carry limit).
set -uo pipefail
export PYTHONUNBUFFERED=1
C=.carry; R=runs/all9
source training/recipes/device_text_encoder.sh
mkdir -p $R
T0=$(date +%s)
[[ -d $R/data ]] || python3 -m training unpack-dataset $C/all-pack.npz $R/data > $R/unpack.log 2>&1 || exit 1
echo "unpacked after $(( $(date +%s) - T0 )) s"
LIMIT=${LIMIT:-500}
S="max_steps=${STEPS:-4000} batch_size=256 lr=1e-4 warmup_steps=200 ckpt_every=1000 data_root=$R/data
   num_workers=3 progress=false source_weights.deepmimic=6 source_weights.cmu=5"
run() { local name=$1 init=$2
  timeout -s INT $(( LIMIT - ($(date +%s) - T0) )) python3 -m training train training/configs/sae.toml \
    $S init_from=$init out_dir=$R/$name > $R/$name.log 2>&1 & }
run ft-default $C/default-sae
run cont-all7 runs/all7/export-sae
wait
echo "trained after $(( $(date +%s) - T0 )) s"; tail -n 2 $R/ft-default.log $R/cont-all7.log
for name in ft-default cont-all7; do
  python3 -m training export $R/$name $R/export-$name >> $R/export.log 2>&1 || { tail $R/export.log; exit 1; }
  tar cf - -C $R export-$name | split -b 15M - $OUT/$name.tar.part-
done
(cd $R && tar czf $OUT/logs.tgz *.log */config.json */summary.json 2>/dev/null)
echo "exported after $(( $(date +%s) - T0 )) s"
