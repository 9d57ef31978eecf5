#!/usr/bin/env bash
# How far does the 64-px Y-Net's pooled out-of-fold AUC move with the seed alone (folds and
# initialisation)? The same run as run.sh's ynet with seeds 2027 and 2028, one thread, run
# after lane B of run.sh.
set -euo pipefail
R=${R:-/work/artifacts/runs/ssl-ema-cpu-64}
DATA=${DATA:-../shared/data}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
for seed in 2027 2028; do
  echo "$(date -u +%T) start ynet-seed$seed" >> "$R/progress.log"
  lnm-node train "cpu64-ynet-seed$seed" "$DATA/busi-dev" --size 64 --folds 3 --seed $seed \
      --epochs 60 --patience 10 --exclude-groups inference/models/ynet-busi/holdout.json \
      --network ynet --out "$R/ynet-seed$seed" > "$R/ynet-seed$seed.log" 2>&1
  echo "$(date -u +%T) end ynet-seed$seed rc=$?" >> "$R/progress.log"
done
