#!/usr/bin/env bash
# Pool, tabulate and compare the CPU 64-px runs into the results folder of the worktree.
set -eu
cd /work/wt-converge
export PYTHONPATH=/work/wt-converge
R=/work/artifacts/runs/hybrid-cpu-64
D=docs/results/hybrid-cpu-64
mkdir -p $D
RUNS=""
for name in ynet hybrid hybrid-ddti hybrid-ssl ynet-loaded hybrid-loaded; do [ -f $R/$name/oof.npz ] && RUNS="$RUNS $R/$name"; done
lnm-node cv-summary $RUNS --dataset /work/shared/data/busi-dev --size 64 --folds 3 --markdown $D/table.md
lnm-node cv-summary $RUNS --dataset /work/shared/data/busi-dev --size 64 --folds 3 --calibration temperature --markdown $D/table-calibrated.md
cmp() { [ -f $R/$1/oof.npz ] && [ -f $R/$2/oof.npz ] || return 0; lnm-node compare $R/$1 $R/$2 --out $R/compare-$1-vs-$2 && mkdir -p $D/compare-$1-vs-$2 && cp $R/compare-$1-vs-$2/compare.json $D/compare-$1-vs-$2/; }
for h in hybrid hybrid-ddti hybrid-ssl; do [ -f $R/$h/oof.npz ] && cmp $h ynet; done
[ -f $R/hybrid-ddti/oof.npz ] && cmp hybrid-ddti hybrid
[ -f $R/hybrid-ssl/oof.npz ] && cmp hybrid-ssl hybrid
[ -f $R/hybrid-ssl/oof.npz ] && [ -f $R/hybrid-ddti/oof.npz ] && cmp hybrid-ssl hybrid-ddti
[ -f $R/ynet/oof.npz ] && cmp ynet ynet-loaded
[ -f $R/hybrid/oof.npz ] && cmp hybrid hybrid-loaded
for name in ynet hybrid hybrid-ddti hybrid-ssl ynet-loaded hybrid-loaded; do
  [ -f $R/$name/learning_curves.png ] && cp $R/$name/learning_curves.png $D/learning-curves-$name.png
done
true
