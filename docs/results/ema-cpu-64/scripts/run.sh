#!/usr/bin/env bash
# Issue 15, CPU: does an exponential moving average of the weights help at 64 px, and where do
# the hybrids end without a time budget? Two fold processes at a time, one CPU thread each;
# no --seconds, so every fold stops by patience or the epoch cap and the figures do not depend
# on the machine's load.
set -euo pipefail
R=${R:-/work/artifacts/runs/ema-cpu-64}
DATA=${DATA:-../shared/data/busi-dev}
COMMON="--size 64 --folds 3 --seed 2026 --epochs 60 --patience 10 \
        --exclude-groups inference/models/ynet-busi/holdout.json"
HYBRID="--network hybrid-swin --backbone swin-f24"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
mkdir -p "$R"
pair() {  # two runs side by side: NAME1 ARGS1 -- NAME2 ARGS2
  local a=$1; shift; local args_a=(); while [ "$1" != "--" ]; do args_a+=("$1"); shift; done; shift
  local b=$1; shift
  lnm-node train "cpu64-$a" "$DATA" $COMMON "${args_a[@]}" --out "$R/$a" > "$R/$a.log" 2>&1 &
  lnm-node train "cpu64-$b" "$DATA" $COMMON "$@" --out "$R/$b" > "$R/$b.log" 2>&1 &
  wait
}
pair ynet --network ynet -- ynet-ema --network ynet --ema-decay 0.99
pair hybrid $HYBRID -- hybrid-ema $HYBRID --ema-decay 0.99
# then, alone with both threads: the hybrid with ddti (thyroid) pretraining of its shared
# encoder, the pretraining under the same settings and average
OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 lnm-node train cpu64-hybrid-ddti-ema "$DATA" $COMMON $HYBRID \
    --ema-decay 0.99 --pretrain ../shared/data/ddti --out "$R/hybrid-ddti-ema" > "$R/hybrid-ddti-ema.log" 2>&1
