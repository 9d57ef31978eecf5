#!/usr/bin/env bash
# Here, before a GPU session (docs/gpu-runbook.md): pack what the device runs need into
# .devdata/gpu and download the Python wheels its image lacks into .whl (both git-ignored).
# The tree that travels is capped at 64 MiB per call, so the data goes in two calls:
#   call 1 (setup.sh) carries .whl and .devdata/gpu/ddti-128.npz,
#   call 2 (kfold.sh) carries .devdata/gpu/busi-256.npz and .devdata/gpu/dicom-frames.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${DATA:-../shared/data}
HOLDOUT=inference/models/ynet-busi/holdout.json
mkdir -p .devdata/gpu
# busi-dev without the hold-out (it never travels), images as lossless PNGs
python3 -m training.pack "$DATA/busi-dev" .devdata/gpu/busi-256.npz --size 256 --png \
    --exclude-groups "$HOLDOUT"
python3 -m training.pack "$DATA/ddti" .devdata/gpu/ddti-128.npz --size 128 --png
# every frame of the real DICOM files, cines included, for the self-supervised pretraining
lnm-node pretrain-ssl .devdata/gpu/dicom-frames --dicom "$DATA/us-dicom" --size 256 --frames-only
# the device's Python is 3.12; versions as installed here
version() { python3 -m pip show "$1" | sed -n 's/^Version: //p'; }
rm -rf .whl
wheels=()
for name in monai pydantic pydantic-core pydantic-settings python-dotenv annotated-types \
    typing-inspection pydicom; do
    wheels+=("$name==$(version "$name")")
done
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl "${wheels[@]}"
tree=$(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1)
size() { du -cb "$@" | tail -1 | cut -f1; }
call1=$((tree + $(size .whl .devdata/gpu/ddti-128.npz)))
call2=$((tree + $(size .devdata/gpu/busi-256.npz .devdata/gpu/dicom-frames)))
limit=$((64 * 1024 * 1024))
echo "travels: call 1 $((call1 / 1000000)) MB, call 2 $((call2 / 1000000)) MB (limit $((limit / 1000000)) MB)"
if [ "$call1" -gt "$limit" ] || [ "$call2" -gt "$limit" ]; then
    echo "over the 64 MiB a call may carry: split the data differently" >&2
    exit 1
fi
