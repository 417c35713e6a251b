#!/usr/bin/env bash
# Train every model of the project on the Bandai Namco data set, on one GPU, in one go:
#   phase 1: the VAE, the SAE (VAE + semantic alignment to the clip labels) and the
#            contrastive evaluator, side by side;
#   phase 2: MoLingo (on the SAE), its ablations (AdaLN single token; on the VAE), MLA-Gen
#            (on the SAE) and MLA-Gen without the sink-mask, side by side;
#   then each run is exported as an engine checkpoint under RUNS/export/.
# Small models are bound by per-step overhead, not by the GPU, so runs share one GPU.
#
# Usage: training/recipes/bandai_train.sh PACK.npz|DATASET RUNS
# Settings (environment): AE_STEPS SAE_STEPS (0 skips the SAE and its ablation) EVAL_STEPS
# GEN_STEPS GEN_BATCH WORKERS PY, MAIN_AE (sae|vae: the autoencoder of the main generators), EXTRA:
# overrides for every run (e.g. EXTRA="preset=tiny device=cpu" for a dry run on a laptop),
# EVALUATOR: an evaluator export to reuse instead of training one (results stay comparable
# with earlier runs scored by it).
set -euo pipefail
SRC=${1:?a pack from "python -m training pack-dataset" or a built data set folder}
RUNS=${2:-runs/bandai}
PY=${PY:-python3}
AE_STEPS=${AE_STEPS:-3000}
SAE_STEPS=${SAE_STEPS:-$AE_STEPS}
MAIN_AE=${MAIN_AE:-sae}
EVAL_STEPS=${EVAL_STEPS:-3000}
GEN_STEPS=${GEN_STEPS:-2000}
GEN_BATCH=${GEN_BATCH:-256}
WORKERS=${WORKERS:-2}
EXTRA=${EXTRA:-}
mkdir -p "$RUNS"
DATA=$SRC
if [[ $SRC == *.npz ]]; then
  DATA=$RUNS/data
  [[ -f $DATA/Mean.npy ]] || $PY -m training unpack-dataset "$SRC" "$DATA"
fi

pids=()
train() {  # NAME CONFIG [overrides...]: runs in the background, log in RUNS/NAME.log
  local name=$1 config=$2
  shift 2
  # shellcheck disable=SC2086
  $PY -m training train "$config" "$@" "out_dir=$RUNS/$name" "data_root=$DATA" \
    "num_workers=$WORKERS" progress=false $EXTRA >"$RUNS/$name.log" 2>&1 &
  pids+=($!)
}
wait_all() {  # fail (with the log's tail) if any run failed
  local failed=0
  for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
  pids=()
  if ((failed)); then tail -n 20 "$RUNS"/*.log; exit 1; fi
}

ae="max_steps=$AE_STEPS warmup_steps=300 ckpt_every=$AE_STEPS"
train vae training/configs/vae.toml $ae
if ((SAE_STEPS > 0)); then
  train sae training/configs/sae.toml "max_steps=$SAE_STEPS" warmup_steps=300 "ckpt_every=$SAE_STEPS"
fi
EVALUATOR=${EVALUATOR:-}
if [[ -n $EVALUATOR ]]; then
  mkdir -p "$RUNS/export" && rm -rf "$RUNS/export/evaluator" && cp -r "$EVALUATOR" "$RUNS/export/evaluator"
else
  train evaluator training/configs/evaluator.toml "max_steps=$EVAL_STEPS" warmup_steps=300 \
    "ckpt_every=$EVAL_STEPS"
fi
wait_all
tail -n 1 "$RUNS"/*.log

gen="max_steps=$GEN_STEPS batch_size=$GEN_BATCH warmup_steps=200 ckpt_every=$GEN_STEPS"
runs=(molingo molingo-adaln mlagen mlagen-nosink)
[[ -n $EVALUATOR ]] || runs+=(evaluator)
train molingo training/configs/molingo.toml "autoencoder=$RUNS/$MAIN_AE" $gen
train molingo-adaln training/configs/molingo-adaln.toml "autoencoder=$RUNS/$MAIN_AE" $gen
train mlagen training/configs/mlagen.toml "autoencoder=$RUNS/$MAIN_AE" $gen
train mlagen-nosink training/configs/mlagen.toml "autoencoder=$RUNS/$MAIN_AE" \
  model.sink_mask=false $gen
if ((SAE_STEPS > 0)); then  # VAE vs SAE: MoLingo on the autoencoder the main one is not on
  other=$([[ $MAIN_AE == sae ]] && echo vae || echo sae)
  train "molingo-$other" training/configs/molingo.toml "autoencoder=$RUNS/$other" $gen
  runs+=("molingo-$other")
fi
wait_all
tail -n 1 "$RUNS"/molingo*.log "$RUNS"/mlagen*.log

for run in "${runs[@]}"; do
  $PY -m training export "$RUNS/$run" "$RUNS/export/$run"
done
