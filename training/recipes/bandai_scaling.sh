#!/usr/bin/env bash
# Scaling of every trainer from one GPU to NGPU GPUs of one host on the Bandai Namco set:
# each task trains STEPS steps at its recipe's global batch, first as one process on one GPU,
# then under torchrun with NGPU processes (same global batch, split across ranks), and the
# steady samples/s of both (the trainer's summary.json) give the scaling efficiency
#   efficiency = (samples/s on NGPU) / (NGPU x samples/s on 1).
# The one-GPU runs of different tasks go side by side on different GPUs (one run per GPU);
# the multi-GPU runs go one at a time. Writes RUNS/scaling.md and RUNS/scaling.json.
#
# Usage: training/recipes/bandai_scaling.sh PACK.npz|DATASET RUNS
# Settings (environment): NGPU (2) STEPS (200) SAE_STEPS (100) BIG_BATCH (1024: an extra
# generator row at a larger global batch) WORKERS (4) PY, EXTRA (overrides for every run,
# e.g. "preset=tiny device=cpu" for a dry run on a laptop).
set -euo pipefail
SRC=${1:?a pack from "python -m training pack-dataset" or a built data set folder}
RUNS=${2:-runs/scaling}
PY=${PY:-python3}
NGPU=${NGPU:-2}
STEPS=${STEPS:-200}
SAE_STEPS=${SAE_STEPS:-100}
BIG_BATCH=${BIG_BATCH:-1024}
WORKERS=${WORKERS:-4}
EXTRA=${EXTRA:-}
mkdir -p "$RUNS"
DATA=$SRC
if [[ $SRC == *.npz ]]; then
  DATA=$RUNS/data
  [[ -f $DATA/Mean.npy ]] || $PY -m training unpack-dataset "$SRC" "$DATA"
fi

common() {  # NAME STEPS: the overrides every run shares
  echo "out_dir=$RUNS/$1 data_root=$DATA num_workers=$WORKERS progress=false max_steps=$2" \
    "warmup_steps=20 ckpt_every=100000 log_every=20 $EXTRA"
}
# name config steps batch [extra overrides]
TASKS=(
  "vae training/configs/vae.toml $STEPS 256"
  "sae training/configs/sae.toml $SAE_STEPS 256"
  "evaluator training/configs/evaluator.toml $STEPS 32"
  "molingo training/configs/molingo.toml $STEPS 256 autoencoder=$RUNS/vae-1"
  "mlagen training/configs/mlagen.toml $STEPS 256 autoencoder=$RUNS/vae-1"
  "molingo-big training/configs/molingo.toml $STEPS $BIG_BATCH autoencoder=$RUNS/vae-1"
  "mlagen-big training/configs/mlagen.toml $STEPS $BIG_BATCH autoencoder=$RUNS/vae-1"
)

one_gpu() {  # GPU ENTRY: one process on one GPU, in the background
  local gpu=$1 name config steps batch extra
  read -r name config steps batch extra <<<"$2"
  # shellcheck disable=SC2046,SC2086
  CUDA_VISIBLE_DEVICES=$gpu $PY -m training train "$config" $(common "$name-1" "$steps") \
    "batch_size=$batch" $extra >"$RUNS/$name-1.log" 2>&1 &
}
many_gpus() {  # ENTRY: torchrun over NGPU GPUs, in the foreground
  local name config steps batch extra
  read -r name config steps batch extra <<<"$1"
  # shellcheck disable=SC2046,SC2086
  $PY -m torch.distributed.run --standalone --nproc_per_node "$NGPU" -m training train \
    "$config" $(common "$name-$NGPU" "$steps") "batch_size=$batch" $extra \
    >"$RUNS/$name-$NGPU.log" 2>&1
}

# The VAE first (the generators train on it), then the one-GPU runs NGPU at a time.
one_gpu 0 "${TASKS[0]}"
wait
pending=("${TASKS[@]:1}")
while ((${#pending[@]})); do
  for ((gpu = 0; gpu < NGPU && gpu < ${#pending[@]}; gpu++)); do one_gpu "$gpu" "${pending[gpu]}"; done
  wait
  pending=("${pending[@]:NGPU}")
done
for entry in "${TASKS[@]}"; do many_gpus "$entry"; done

$PY - "$RUNS" "$NGPU" <<'PY'
import json, sys
from pathlib import Path
runs, n = Path(sys.argv[1]), int(sys.argv[2])
rows, lines = [], [
    f"| task | global batch | 1 GPU samples/s | {n} GPUs samples/s | speed-up | efficiency |",
    "|---|---|---|---|---|---|",
]
for one in sorted(runs.glob("*-1/summary.json")):
    name = one.parent.name[:-2]
    a = json.loads(one.read_text())
    b = json.loads((runs / f"{name}-{n}" / "summary.json").read_text())
    ra = a["samples_per_second_steady"] or a["samples_per_second"]
    rb = b["samples_per_second_steady"] or b["samples_per_second"]
    rows.append({"task": name, "batch": a["global_batch"], "one": ra, "many": rb,
                 "gpu": a["gpu"], "efficiency": rb / (n * ra)})
    lines.append(f"| {name} | {a['global_batch']} | {ra:,.0f} | {rb:,.0f} | {rb / ra:.2f}x "
                 f"| {100 * rb / (n * ra):.0f}% |")
(runs / "scaling.json").write_text(json.dumps(rows, indent=1) + "\n")
(runs / "scaling.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PY
