#!/usr/bin/env bash
# Sequential CPU 64-px k-fold runs (issue 15); one training at a time.
set -u
cd /work/wt-converge
export PYTHONPATH=/work/wt-converge
R=/work/artifacts/runs/hybrid-cpu-64
COMMON="--size 64 --folds 3 --seed 2026 --epochs 60 --patience 10 --seconds 360 --exclude-groups inference/models/ynet-busi/holdout.json"
DATA=/work/shared/data/busi-dev
run() { name=$1; shift; echo "$(date -u +%T) start $name"; /usr/bin/time -v lnm-node train "$@" $COMMON --out $R/$name > $R/$name.log 2>&1; echo "$(date -u +%T) end $name rc=$?"; }
run ynet cpu64-ynet $DATA --network ynet
run hybrid cpu64-hybrid $DATA --network hybrid-swin --backbone swin-f24
run hybrid-ddti cpu64-hybrid-ddti $DATA --network hybrid-swin --backbone swin-f24 --pretrain /work/shared/data/ddti
if [ -f /work/artifacts/ssl-hybrid-64/encoder.pt ]; then
  run hybrid-ssl cpu64-hybrid-ssl $DATA --network hybrid-swin --backbone swin-f24 --pretrain-encoder /work/artifacts/ssl-hybrid-64/encoder.pt
else
  echo "$(date -u +%T) skip hybrid-ssl: no /work/artifacts/ssl-hybrid-64/encoder.pt"
fi
echo "$(date -u +%T) all done"
