#!/usr/bin/env bash
# Sequential CPU 64-px k-fold runs (issue 15): the hybrid from the 15-epoch SSL encoder, then the
# same-day hybrid from scratch and Y-Net baselines; one training at a time, as in hybrid-cpu-64.
set -u
cd /work/main
R=/tmp/cpu64
COMMON="--size 64 --folds 3 --seed 2026 --epochs 60 --patience 10 --seconds 360 --exclude-groups inference/models/ynet-busi/holdout.json"
DATA=../shared/data/busi-dev
run() { name=$1; shift; echo "$(date -u +%T) start $name"; lnm-node train "$@" $COMMON --out $R/$name > $R/$name.log 2>&1; echo "$(date -u +%T) end $name rc=$?"; }
run hybrid-ssl15 cpu64-hybrid-ssl $DATA --network hybrid-swin --backbone swin-f24 --pretrain-encoder /tmp/ssl-long/work/ssl/encoder.pt
run hybrid cpu64-hybrid $DATA --network hybrid-swin --backbone swin-f24
run ynet cpu64-ynet $DATA --network ynet
echo "$(date -u +%T) all done"
