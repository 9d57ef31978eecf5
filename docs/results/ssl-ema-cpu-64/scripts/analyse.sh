#!/usr/bin/env bash
# Tabulate, test and draw the runs of run.sh into this results folder (from the repository root).
set -euo pipefail
R=${R:-/work/artifacts/runs/ssl-ema-cpu-64}
D=docs/results/ssl-ema-cpu-64
DATA=${DATA:-../shared/data}
RUNS="$R/ynet $R/hybrid-ema $R/hybrid-ssl-ema"
lnm-node cv-summary $RUNS --dataset "$DATA/busi-dev" --size 64 --folds 3 --markdown $D/table.md
lnm-node cv-summary $RUNS --dataset "$DATA/busi-dev" --size 64 --folds 3 \
    --calibration temperature --markdown $D/table-calibrated.md
python -m training.learning_curves $RUNS --stops $D/stops.md
pair() {
  lnm-node compare "$R/$1" "$R/$2" --out "$R/compare-$1-vs-$2" > /dev/null
  mkdir -p "$D/compare-$1-vs-$2" && cp "$R/compare-$1-vs-$2/compare.json" "$D/compare-$1-vs-$2/"
}
pair hybrid-ssl-ema hybrid-ema
pair hybrid-ssl-ema ynet
pair hybrid-ema ynet
for name in ynet hybrid-ema hybrid-ssl-ema; do
  cp "$R/$name/learning_curves.png" "$D/learning-curves-$name.png"
done
cp "$R/ssl/ssl.json" "$R/ssl/log.jsonl" $D/
# seeds.sh and seeds_hybrid.sh: the Y-Net and the scratch hybrid with the average, seeds 2027
# and 2028 (seed 2026 is run.sh's), each seed's pair compared on its own folds
SEEDS="$R/ynet-seed2027 $R/hybrid-ema-seed2027 $R/ynet-seed2028 $R/hybrid-ema-seed2028"
lnm-node cv-summary $SEEDS --dataset "$DATA/busi-dev" --size 64 --folds 3 --markdown $D/table-seeds.md
python -m training.learning_curves $SEEDS --stops $D/stops-seeds.md
pair hybrid-ema-seed2027 ynet-seed2027
pair hybrid-ema-seed2028 ynet-seed2028
