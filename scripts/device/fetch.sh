#!/usr/bin/env bash
# Device call 3, only when kfold.sh left weights behind (on the same warm machine): returns them.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p "$OUT/weights"
while read -r path; do cp "$path" "$OUT/weights/"; done < .devdata/work/out/pending.txt
ls -l "$OUT/weights"
