#!/usr/bin/env bash
# Issue 15, CPU: the hybrid from a self-supervised encoder, converged with the moving average of
# the weights (the one cell ema-cpu-64 left empty), beside same-day baselines for paired tests.
# Two lanes at a time, one CPU thread each; no --seconds, so every fold stops by patience or
# the epoch cap and the figures do not depend on the machine's load.
#   lane A: SSL pretraining of the hybrid's shared encoder (15 epochs, as ssl-long-cpu-64),
#           then the hybrid from that encoder with --ema-decay 0.99
#   lane B: the Y-Net, then the scratch hybrid with --ema-decay 0.99 (ema-cpu-64's settings)
set -euo pipefail
R=${R:-/work/artifacts/runs/ssl-ema-cpu-64}
DATA=${DATA:-../shared/data}
HOLDOUT=inference/models/ynet-busi/holdout.json
COMMON="--size 64 --folds 3 --seed 2026 --epochs 60 --patience 10 --exclude-groups $HOLDOUT"
HYBRID="--network hybrid-swin --backbone swin-f24"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
mkdir -p "$R"
stamp() { echo "$(date -u +%T) $*" >> "$R/progress.log"; }
train() {  # NAME ARGS...
  local name=$1; shift
  stamp "start $name"
  lnm-node train "cpu64-$name" "$DATA/busi-dev" $COMMON "$@" --out "$R/$name" > "$R/$name.log" 2>&1
  stamp "end $name rc=$?"
}
lane_a() {
  stamp "start ssl"
  lnm-node pretrain-ssl "$R/ssl" --network hybrid-swin --backbone swin-f24 --size 64 \
      --busi "$DATA/busi-dev" --ddti "$DATA/ddti" --dicom "$DATA/us-dicom" \
      --exclude-groups "$HOLDOUT" --epochs 15 --seed 2026 > "$R/ssl.log" 2>&1
  stamp "end ssl rc=$?"
  train hybrid-ssl-ema $HYBRID --ema-decay 0.99 --pretrain-encoder "$R/ssl/encoder.pt"
}
lane_b() {
  train ynet --network ynet
  train hybrid-ema $HYBRID --ema-decay 0.99
}
lane_a & lane_b & wait
stamp "all done"
