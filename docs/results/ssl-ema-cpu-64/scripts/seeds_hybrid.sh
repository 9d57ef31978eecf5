#!/usr/bin/env bash
# The scratch hybrid with the moving average (run.sh's hybrid-ema) with seeds 2027 and 2028, to
# pair with seeds.sh's Y-Nets (the seed draws the folds, so each seed's two runs share them).
# One run per lane, one thread each: seed 2027 after run.sh, seed 2028 after seeds.sh.
set -euo pipefail
R=${R:-/work/artifacts/runs/ssl-ema-cpu-64}
DATA=${DATA:-../shared/data}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
hybrid() {  # SEED
  echo "$(date -u +%T) start hybrid-ema-seed$1" >> "$R/progress.log"
  lnm-node train "cpu64-hybrid-ema-seed$1" "$DATA/busi-dev" --size 64 --folds 3 --seed "$1" \
      --epochs 60 --patience 10 --exclude-groups inference/models/ynet-busi/holdout.json \
      --network hybrid-swin --backbone swin-f24 --ema-decay 0.99 \
      --out "$R/hybrid-ema-seed$1" > "$R/hybrid-ema-seed$1.log" 2>&1
  echo "$(date -u +%T) end hybrid-ema-seed$1 rc=$?" >> "$R/progress.log"
}
after() { until grep -q "$1" "$R/progress.log"; do sleep 20; done; }
(after "all done"; hybrid 2027) &
(after "end ynet-seed2028"; hybrid 2028) &
wait
