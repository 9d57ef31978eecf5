#!/usr/bin/env bash
# Tabulate, test and draw the runs of run.sh into this results folder (from the repository root).
set -euo pipefail
R=${R:-/work/runs/size-cpu}
D=docs/results/ynet-size-cpu
DATA=${DATA:-../shared/data}
lnm-node cv-summary "$R/ynet-ema-128" --dataset "$DATA/busi-dev" --size 128 --folds 3 \
    --calibration temperature --markdown $D/table-128.md
lnm-node cv-summary "$R/ynet-ema-64" "$R/ynet-64" --dataset "$DATA/busi-dev" --size 64 --folds 3 \
    --calibration temperature --markdown $D/table-64.md
python -m training.learning_curves "$R/ynet-ema-64" "$R/ynet-ema-128" "$R/ynet-64" --stops $D/stops.md
for name in ynet-ema-64 ynet-ema-128; do
  cp "$R/$name/learning_curves.png" "$D/learning-curves-$name.png"
done
lnm-node compare "$R/ynet-ema-128" "$R/ynet-ema-64" --out "$R/compare-128-vs-64" > /dev/null
mkdir -p $D/compare-128-vs-64 && cp "$R/compare-128-vs-64/compare.json" $D/compare-128-vs-64/
lnm-node compare "$R/ynet-ema-64" "$R/ynet-64" --out "$R/compare-ema-vs-plain-64" > /dev/null
mkdir -p $D/compare-ema-vs-plain-64 && cp "$R/compare-ema-vs-plain-64/compare.json" $D/compare-ema-vs-plain-64/
