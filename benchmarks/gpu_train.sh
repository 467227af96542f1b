#!/usr/bin/env bash
# Issue 19's GPU check, prepared for one short run on a lent GPU machine (after benchmarks/gpu_carry.sh's
# preamble): facesets from the shared clips, a 128 px model trained on the GPU for at most 8 minutes
# (bf16 autocast), exported as a DFM and registered, then bench_gpu.py swapping every face with it (GPU and
# its same-run CPU baseline) and the GPU training tests. Figures and logs go to $OUT (default out/gpu-train).
#
#   bash benchmarks/gpu_train.sh [MINUTES]        # MINUTES of training, default 8
set -euo pipefail

MINUTES=${1:-8}
OUT=${OUT:-out/gpu-train}
SHARED=${STAGESWAP_SHARED:-../shared}
PY=${PY:-python3}
DATA="$OUT/data"
mkdir -p "$OUT"
nvidia-smi -L | tee "$OUT/gpu.txt"

"$PY" -m streamer faceset extract "$SHARED/data/clips/Obama_speaking.mp4" --out "$OUT/fs/src" --resolution 128 \
  --replace 2>/dev/null | tee "$OUT/faceset.txt"
"$PY" -m streamer faceset extract "$SHARED/data/clips/d10.mp4" "$SHARED/data/clips/d3.mp4" --out "$OUT/fs/dst" \
  --resolution 128 --replace 2>/dev/null | tee -a "$OUT/faceset.txt"
"$PY" -m streamer train gpu-obama --src "$OUT/fs/src" --dst "$OUT/fs/dst" --preset gpu --device cuda \
  --minutes "$MINUTES" --unverified --data-dir "$DATA" | tee "$OUT/train.txt"
cp "$DATA/training/gpu-obama/preview.png" "$OUT/preview.png"
"$PY" benchmarks/bench_gpu.py --swap-model gpu-obama --data-dir "$DATA" --frames 200 --baseline-frames 30 \
  --json "$OUT/bench_gpu.json" | tee "$OUT/bench_gpu.txt"
"$PY" -m pytest -m gpu -p no:cacheprovider -q tests/test_train_gpu.py | tee "$OUT/tests.txt"
