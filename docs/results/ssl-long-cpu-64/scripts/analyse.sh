#!/usr/bin/env bash
# Pool, tabulate and compare the runs of run.sh into this results folder.
set -eu
cd /work/main
R=/tmp/cpu64
D=docs/results/ssl-long-cpu-64
DATA=../shared/data/busi-dev
lnm-node cv-summary $R/ynet $R/hybrid $R/hybrid-ssl15 --dataset $DATA --size 64 --folds 3 \
    --markdown $D/table.md
lnm-node cv-summary $R/ynet $R/hybrid $R/hybrid-ssl15 --dataset $DATA --size 64 --folds 3 \
    --calibration temperature --markdown $D/table-calibrated.md
cmp() { lnm-node compare $R/$1 $R/$2 --out $R/compare-$1-vs-$2 > /dev/null
        mkdir -p $D/compare-$1-vs-$2 && cp $R/compare-$1-vs-$2/compare.json $D/compare-$1-vs-$2/; }
cmp hybrid-ssl15 hybrid
cmp hybrid-ssl15 ynet
cmp hybrid ynet
for name in ynet hybrid hybrid-ssl15; do cp $R/$name/learning_curves.png $D/learning-curves-$name.png; done
cp /tmp/ssl-long/work/ssl/ssl.json /tmp/ssl-long/work/ssl/log.jsonl $D/
