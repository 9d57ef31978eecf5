#!/usr/bin/env bash
# Does the instruction set explain the 64-px Y-Net moving between machines (0.852 vs 0.805)?
# The exact ynet-64 command of docs/results/ema-cpu-64, twice side by side on one AVX-512
# machine: as the machine dispatches, and with torch (ATen, oneDNN) and MKL held to AVX2.
set -euo pipefail
R=${R:-/work/runs/isa}  # results: docs/results/ynet-size-cpu/isa/
DATA=${DATA:-../shared/data/busi-dev}
CMD="--size 64 --folds 3 --seed 2026 --epochs 60 --patience 10 --network ynet \
     --exclude-groups inference/models/ynet-busi/holdout.json"
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 lnm-node train cpu64-ynet "$DATA" $CMD \
    --home "$R/home-native" --out "$R/ynet-64-native" > "$R/ynet-64-native.log" 2>&1 &
OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 \
    MKL_ENABLE_INSTRUCTIONS=AVX2 lnm-node train cpu64-ynet "$DATA" $CMD \
    --home "$R/home-avx2" --out "$R/ynet-64-avx2" > "$R/ynet-64-avx2.log" 2>&1 &
wait
