#!/usr/bin/env bash
# Issue 15, CPU: does the Y-Net gain from 128 px over 64 px? The GPU plan falls back to 128 px
# when 256 px cannot train 30 epochs in its budget (docs/gpu-runbook.md). Same folds (seed
# 2026), the moving average of the GPU run, the hold-out left out; both runs side by side,
# the 128-px run with two threads, the 64-px one with one; no --seconds (patience stops).
set -euo pipefail
R=${R:-/work/runs/size-cpu}
DATA=${DATA:-../shared/data/busi-dev}
COMMON="--folds 3 --seed 2026 --epochs 60 --patience 10 --network ynet --ema-decay 0.99 \
        --exclude-groups inference/models/ynet-busi/holdout.json"
mkdir -p "$R"
OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 lnm-node train cpu128-ynet-ema "$DATA" --size 128 $COMMON \
    --out "$R/ynet-ema-128" > "$R/ynet-ema-128.log" 2>&1 &
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 lnm-node train cpu64-ynet-ema "$DATA" --size 64 $COMMON \
    --out "$R/ynet-ema-64" > "$R/ynet-ema-64.log" 2>&1 &
wait
# then, to check whether this machine reproduces the earlier tables' 64-px Y-Net (no average;
# docs/results/ema-cpu-64), the same command as there, one thread, beside the 128-px run
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 lnm-node train cpu64-ynet "$DATA" --size 64 --folds 3 \
    --seed 2026 --epochs 60 --patience 10 --network ynet \
    --exclude-groups inference/models/ynet-busi/holdout.json --out "$R/ynet-64" > "$R/ynet-64.log" 2>&1
