#!/usr/bin/env bash
# Tabulate, test and draw the runs of run.sh into this results folder (from the repository root).
set -euo pipefail
R=${R:-/work/artifacts/runs/ema-cpu-64}
D=docs/results/ema-cpu-64
RUNS="$R/ynet $R/ynet-ema $R/hybrid $R/hybrid-ema $R/hybrid-ddti-ema"
lnm-node cv-summary $RUNS --dataset ../shared/data/busi-dev --size 64 --folds 3 --markdown $D/table.md
python -m training.learning_curves $RUNS --stops $D/stops.md
pair() {
  lnm-node compare "$R/$1" "$R/$2" --out "$R/compare-$1-vs-$2"
  mkdir -p "$D/compare-$1-vs-$2" && cp "$R/compare-$1-vs-$2/compare.json" "$D/compare-$1-vs-$2/"
}
pair ynet-ema ynet
pair hybrid ynet
pair hybrid-ema hybrid
pair hybrid-ema ynet
pair hybrid-ddti-ema hybrid-ema
pair hybrid-ddti-ema ynet
for name in ynet ynet-ema hybrid hybrid-ema hybrid-ddti-ema; do
  cp "$R/$name/learning_curves.png" "$D/learning-curves-$name.png"
done
