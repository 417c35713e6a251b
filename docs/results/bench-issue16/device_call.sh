#!/usr/bin/env bash
# Device call (session 5): issue 16's GPU proof (CUDA tests + benchmark before/after, one round),
# issue 17's 60 s sequence on the GPU, issue 19's paper epoch times (what time is left).
set -uo pipefail
export PYTHONUNBUFFERED=1
T0=$(date +%s); RES=/tmp/res; mkdir -p $RES
( while sleep 30; do tar czf $OUT/res.tgz -C $RES . 2>/dev/null; done ) & SAVER=$!
ROUNDS=1 OUT=$RES/bench16 timeout 220 bash docs/bench_issue16.sh > $RES/bench16.txt 2>&1
echo "bench16 done after $(( $(date +%s) - T0 )) s"; tail -n 20 $RES/bench16.txt
export PYTHONPATH=/tmp/site:$PWD
for g in mlagen molingo; do
  timeout 35 python3 -m training.evaluation.timeline engine/checkpoints/default --data none --evaluator none \
    --device cuda --generator $g --sixty-only --out $RES/sixty-$g.json > $RES/sixty-$g.log 2>&1
  grep -E "seconds|peak" $RES/sixty-$g.json
done
echo "sixty done after $(( $(date +%s) - T0 )) s"
timeout $(( 385 - ($(date +%s) - T0) )) python3 training/recipes/paper_epoch_time.py --out /tmp/pet --steps 20 \
  > $RES/paper_epoch_time.txt 2>&1
cp /tmp/pet/paper_epoch_time.json $RES/ 2>/dev/null; mkdir -p $RES/pet && cp /tmp/pet/runs/*.log $RES/pet/ 2>/dev/null
tail -n 12 $RES/paper_epoch_time.txt
echo "all done after $(( $(date +%s) - T0 )) s"
kill $SAVER; tar czf $OUT/res.tgz -C $RES .
