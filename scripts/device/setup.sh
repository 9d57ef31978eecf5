#!/usr/bin/env bash
# Device call 1 of 2 (docs/gpu-runbook.md); carry: .whl .devdata/gpu/ddti-128.npz
# Installs the carried wheels into .devdata/site (kept on the warm machine for call 2), times
# every registered model on the GPU (issue 14: forward, batch and Grad-CAM per second, peak
# memory, run_model per study) and probes the training speed of each k-fold network alone,
# which sets the folds and input size call 2 runs (.devdata/plan.env). Call 2 must follow within the warm
# machine's 30 s; otherwise the machine is fresh and call 1 runs again.
set -euo pipefail
cd "$(dirname "$0")/../.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target .devdata/site .whl/*.whl
export PYTHONPATH=$PWD/.devdata/site PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/gpu.txt" || true
python3 -c "import torch, monai; print('torch', torch.__version__, 'monai', monai.__version__)" \
    | tee -a "$OUT/gpu.txt"
python3 benchmarks/inference.py --skip-backbones --repeats 5 --batch 32 \
    --json "$OUT/inference.json" > "$OUT/inference.md" 2>&1
python3 -m training.gpu_kfold probe --ddti .devdata/gpu/ddti-128.npz --out "$OUT" \
    --work .devdata/work-probe --budget-s "${BUDGET:-420}" ${KFOLD_ARGS:-} 2>&1 | grep -v '━' | tail -20
# the plan kfold.sh follows: the folds and input size the probe chose
python3 -c 'import json, sys; p = json.load(sys.stdin)
print("PLAN_ARGS=\"--folds %d --size %d\"" % (p["planned_folds"], p["planned_size"]))' \
    < "$OUT/probe.json" | tee .devdata/plan.env
