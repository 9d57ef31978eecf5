#!/usr/bin/env bash
# Device call 2 of 2 (docs/gpu-runbook.md); carry: .devdata/gpu/busi-256.npz .devdata/gpu/dicom-frames
# Runs training.gpu_kfold (every configuration's k folds, the ddti and self-supervised
# pretrainings, the hold-out left out) and returns the bundle, the summary, the log and as
# many of the selected configuration's fold weights as one return holds; fetch.sh the rest.
set -uo pipefail
cd "$(dirname "$0")/../.."
if [ ! -d .devdata/site ] || [ ! -f .devdata/gpu/ddti-128.npz ]; then
    echo "this machine has not run setup.sh (a fresh machine): run call 1 again first" >&2
    exit 3
fi
export PYTHONPATH=$PWD/.devdata/site PYTHONUNBUFFERED=1
PLAN_ARGS=
[ -f .devdata/plan.env ] && . .devdata/plan.env
# an average of the weights (docs/results/ema-cpu-64): EMA_DECAY= (empty) turns it off
EMA_DECAY=${EMA_DECAY-0.99}
echo "plan: ${PLAN_ARGS:-none} ${KFOLD_ARGS:-} ema ${EMA_DECAY:-off}"
WORK=$PWD/.devdata/work
rm -rf "$WORK"
status=0
python3 -m training.gpu_kfold run --busi .devdata/gpu/busi-256.npz \
    --ddti .devdata/gpu/ddti-128.npz --frames .devdata/gpu/dicom-frames/frames.npz \
    --exclude-groups inference/models/ynet-busi/holdout.json --out "$WORK/out" --work "$WORK" \
    --budget-s "${BUDGET:-420}" ${EMA_DECAY:+--ema-decay "$EMA_DECAY"} ${PLAN_ARGS} ${KFOLD_ARGS:-} 2>&1 | grep -v '━' > "$OUT/kfold.log" || status=$?
tail -15 "$OUT/kfold.log"
cp "$WORK/out/kfold.tar.gz" "$WORK/out/summary.json" "$OUT/" 2>/dev/null || true
mkdir -p "$OUT/weights"
# one return: 8 files and 64 MiB at most; leave room for the three files above
budget=$((56 * 1024 * 1024))
files=0
: > "$WORK/out/pending.txt"
for path in "$WORK"/out/weights/*.pt; do
    [ -e "$path" ] || continue
    bytes=$(stat -c %s "$path")
    if [ "$bytes" -le "$budget" ] && [ "$files" -lt 5 ]; then
        cp "$path" "$OUT/weights/" && budget=$((budget - bytes)) && files=$((files + 1))
    else
        echo "$path" >> "$WORK/out/pending.txt"
    fi
done
echo "weights returned: $files; left for fetch.sh: $(wc -l < "$WORK/out/pending.txt")"
exit "$status"
