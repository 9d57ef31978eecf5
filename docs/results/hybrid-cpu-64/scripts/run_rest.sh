#!/usr/bin/env bash
# After hybrid-ddti: rerun hybrid and Y-Net (their first runs shared the CPU with an SSL
# pretraining and test suites: 50-130 s per epoch), then hybrid + SSL encoder. Same settings.
set -u
cd /work/wt-converge
export PYTHONPATH=/work/wt-converge
R=/work/artifacts/runs/hybrid-cpu-64
COMMON="--size 64 --folds 3 --seed 2026 --epochs 60 --patience 10 --seconds 360 --exclude-groups inference/models/ynet-busi/holdout.json"
DATA=/work/shared/data/busi-dev
while kill -0 21791 2>/dev/null; do sleep 5; done
echo "$(date -u +%T) end hybrid-ddti"
run() { name=$1; shift; echo "$(date -u +%T) start $name"; /usr/bin/time -v lnm-node train "$@" $COMMON --out $R/$name > $R/$name.log 2>&1; echo "$(date -u +%T) end $name rc=$?"; }
run hybrid cpu64-hybrid $DATA --network hybrid-swin --backbone swin-f24
run ynet cpu64-ynet $DATA --network ynet
if [ "$(date -u +%H%M)" -le 1725 ] && [ -f /work/artifacts/ssl-hybrid-64/encoder.pt ]; then
  run hybrid-ssl cpu64-hybrid-ssl $DATA --network hybrid-swin --backbone swin-f24 --pretrain-encoder /work/artifacts/ssl-hybrid-64/encoder.pt
else
  echo "$(date -u +%T) skip hybrid-ssl (after 17:25 UTC or no encoder)"
fi
echo "$(date -u +%T) all done"
