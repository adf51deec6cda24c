#!/usr/bin/env bash
# The stand-in training job of the README's launch script: reads --batch_size, "trains", reports a result.
# Results reach the store as JSON in $XM_RESULTS_PATH (what xm.report writes from Python).
set -euo pipefail
batch_size=32
for arg in "$@"; do
  case "$arg" in
    --batch_size=*) batch_size="${arg#--batch_size=}" ;;
  esac
done
echo "training with batch_size=$batch_size (HEAPPROFILE=${HEAPPROFILE:-unset})"
loss=$(awk -v b="$batch_size" 'BEGIN { printf "%.4f", 0.05 + 16 / b }')
if [ -n "${XM_RESULTS_PATH:-}" ]; then
  printf '{"loss": %s}\n' "$loss" > "$XM_RESULTS_PATH"
fi
echo "loss=$loss"
