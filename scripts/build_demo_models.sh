#!/usr/bin/env bash
# Rebuild the shipped synthetic demo models (inference/models/*-phantom) with the CLI alone:
# phantom studies with their pathology -> study-level dataset per model -> k-fold training ->
# the best fold packaged into a scratch home -> copied over the shipped folder.
#
#   scripts/build_demo_models.sh [WORK] [VERSION]
#
# Synthetic data only: the models demonstrate each family's path through the node and have no
# clinical value. Runs on the CPU in minutes (64-px networks); `nice` keeps it polite.
# segcls-hybrid-phantom is not rebuilt here: its segmentation head needs reference masks, which
# DICOM studies from a PACS do not carry.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
WORK="${1:-$(mktemp -d)}"
VERSION="${2:-0.3.0}"
STUDIES="${STUDIES:-48}"
FOLDS="${FOLDS:-2}"
NOTE="Synthetic phantom studies only (lnm-node phantom --seed 1000, half of them ambiguous in B-mode); no patient data."
lnm() { nice -n 10 python3 -m cli.main "$@"; }

OOD=()
SHARED=../shared/data
if [ -d "$SHARED" ]; then
  OOD=(--ood-images "busi=$SHARED/busi-dev" --ood-images "ddti=$SHARED/ddti"
       --ood-dicom "us_dicom=$SHARED/us-dicom" --limit 60)
fi

mkdir -p "$WORK"
if [ ! -f "$WORK/pathology.csv" ]; then
  lnm phantom "$WORK/studies" --studies "$STUDIES" --seed 1000 --pathology-csv "$WORK/pathology.csv" >/dev/null
fi
# key and epochs; the image model's SqueezeNet (no batch norm) wants a lower learning rate
while read -r key epochs rate; do
  if grep -q "\"version\": \"$VERSION\"" "inference/models/$key/spec.json"; then
    continue  # rebuilt already (a rerun after an interruption)
  fi
  if [ ! -f "$WORK/ds-$key/manifest.json" ]; then
    lnm dataset build --dicom-folder "$WORK/studies" --labels "$WORK/pathology.csv" \
      --model "$key" --out "$WORK/ds-$key" --folds "$FOLDS" --home "$WORK/home"
  fi
  lnm train "$key" "$WORK/ds-$key" --out "$WORK/run-$key" --folds "$FOLDS" --epochs "$epochs" \
    --batch-size 8 --learning-rate "$rate" --package "$VERSION" --home "$WORK/home" \
    --data-note "$NOTE"
  rm -rf "inference/models/$key"
  mv "$WORK/home/models/$key-$VERSION" "inference/models/$key"
  # the out-of-domain gate of the new weights (issue 12), with its figures where ../shared is
  lnm scope fit-gate "$key" phantom "${OOD[@]}" --home "$WORK/home"
done <<'MODELS'
image-squeezenet1_1-phantom 10 3e-4
dual-crossattn-phantom 10 1e-3
video-tin-phantom 3 1e-3
ceus-fusion-phantom 10 1e-3
MODELS
lnm models verify
