#!/usr/bin/env bash
# Issue 16 GPU proof, in one device call: the CUDA sampling tests, then `python -m engine
# benchmark` with the settings of the issue's figures (docs/benchmarks.md, "The shipped
# checkpoint": MLA-Gen default path, MLA-Gen bulk path, MoLingo; batches 1 and 256, median
# of 5 after a warm-up), for the code before the refactor and after it, run alternately.
#
# Run from the repository root on the device with .carry carried:
#   before (once, here): main just before issue 16's first refactor commit (7504b6a), with
#   today's cleanup (the lead's foot pins changed since and cleanup is inside the timing):
#     rm -rf .carry/engine-before && mkdir -p .carry/engine-before &&
#     git archive 88f84af engine ':!engine/checkpoints' | tar -x -C .carry/engine-before &&
#     cp engine/edit/cleanup.py engine/edit/foot_cleanup.py .carry/engine-before/engine/
#   device: bash docs/bench_issue16.sh        (writes everything under $OUT; ROUNDS=1 for one round)
# Without .carry/engine-before only the code of this tree is timed.
set -uo pipefail
export PYTHONUNBUFFERED=1
ROOT=$PWD
OUT=${OUT:-/tmp/bench16}
mkdir -p "$OUT"

source training/recipes/device_text_encoder.sh  # the default text encoder
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > "$OUT/gpu.txt"
python3 -c "import torch, sys; print(torch.__version__, torch.version.cuda, sys.version)" >> "$OUT/gpu.txt"

# 1. CUDA tests (and the CPU ones they sit beside): fast paths against the reference loops,
#    the sampling copy, the recorded outputs (the pipeline part is left out here: the slim
#    text encoder is not the one that recorded it).
python3 -m pytest -q -p no:cacheprovider tests/engine/sampling/test_fast_sampling.py \
  tests/engine/sampling/test_sampling_model.py tests/engine/sampling/test_sampling_reference.py \
  tests/engine/sampling/test_guidance.py tests/engine/sampling/test_path.py tests/engine/sampling/test_ode.py \
  tests/engine/sampling/test_mar.py tests/engine/models/test_mlagen.py tests/engine/models/test_molingo.py \
  -k "not pipeline" > "$OUT/cuda_tests.log" 2>&1
echo "CUDA tests: $(tail -1 "$OUT/cuda_tests.log")"

# 2. Benchmarks: `python -m engine benchmark` with generate(..., clean=False) in both trees: the
#    clean-up changed after the "before" commit (swing clearance, smoothing; session 6-7), and
#    what the issue changed is the sampling, so the rows time the network, sampler and decoder.
RAW_BENCH='import functools, sys, engine.benchmark as b, engine.cli as c
b.generate = functools.partial(b.generate, clean=False)
sys.exit(c.main(["benchmark", *sys.argv[1:]]))'
# The issue's three rows, before/after alternately (ROUNDS rounds, default 2).
bench() {  # bench LABEL DIR ARGS...: one benchmark run from DIR's engine
  local label=$1 dir=$2; shift 2
  (cd "$dir" && PYTHONPATH=${PYTHONPATH:-}:$dir python3 -c "$RAW_BENCH" --device cuda \
     --checkpoint "$ROOT/engine/checkpoints/default" --batches 1,256 --repeats 5 \
     --json "$OUT/$label.json" "$@") > "$OUT/$label.log" 2>&1
  echo "== $label"; grep -E "^\| (mlagen|molingo)" "$OUT/$label.log" || tail -5 "$OUT/$label.log"
}
trees=("after:$ROOT")
[[ -d .carry/engine-before/engine ]] && trees=("before:$ROOT/.carry/engine-before" "${trees[@]}")
for round in $(seq 1 "${ROUNDS:-2}"); do
  for tree in "${trees[@]}"; do
    name=${tree%%:*} dir=${tree#*:}
    bench "$name-r$round-mlagen" "$dir" --generators mlagen
    bench "$name-r$round-mlagen-bulk" "$dir" --generators mlagen --precision bf16 --compile
    bench "$name-r$round-molingo" "$dir" --generators molingo
  done
done
