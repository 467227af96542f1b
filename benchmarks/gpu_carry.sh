#!/usr/bin/env bash
# Prepare what the lent GPU machine lacks, for `make test-gpu` / `make bench-gpu` style runs there.
#
# That machine has CUDA 13, PyTorch, ONNX, ONNX Runtime and OpenCV for Python 3.12, but no package index and
# no ../shared. Run this here, in the repository root, with network access: it fills $DEST (default .gpu,
# ignored through .git/info/exclude) with
#   whl/    ai-edge-litert (the CPU reference the GPU output is compared with) and pycuda's sources and
#           pure-Python dependencies, for CPython 3.12 manylinux;
#   shared/ the shared clips, photos and the registry's models (tests and benchmarks read STAGESWAP_SHARED).
# On the GPU machine, carry $DEST and start the command with the lines this script prints at the end.
set -euo pipefail

DEST=${1:-.gpu}
PIP=${PIP:-.venv/bin/pip}
SHARED=${STAGESWAP_SHARED:-../shared}

mkdir -p .git/info
touch .git/info/exclude
grep -qxF "/$DEST/" .git/info/exclude || echo "/$DEST/" >>.git/info/exclude
rm -rf "$DEST"
mkdir -p "$DEST/whl" "$DEST/shared/data" "$DEST/shared/models"

wheel() { # NAME==VERSION: a CPython 3.12 x86-64 wheel, trying the manylinux tags pip must match exactly
  for plat in manylinux_2_17_x86_64 manylinux_2_27_x86_64 manylinux_2_28_x86_64 manylinux_2_24_x86_64 \
    manylinux_2_31_x86_64 manylinux_2_34_x86_64 manylinux_2_35_x86_64; do
    if "$PIP" download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform "$plat" -d "$DEST/whl" "$1" 2>/dev/null; then return 0; fi
  done
  echo "gpu_carry: no wheel for $1" >&2
  return 1
}

wheel ai-edge-litert==2.3.0
wheel backports.strenum
wheel siphash24
"$PIP" download -q --no-deps -d "$DEST/whl" pytools platformdirs mako
"$PIP" download -q --no-deps --no-binary pycuda -d "$DEST/whl" "pycuda==2026.1"

cp -r "$SHARED/data/clips" "$SHARED/data/faces" "$DEST/shared/data/"
for model in yunet_s_dynamic.onnx face_landmark.tflite selfie_segmentation.tflite yunet_s_640_640.onnx; do
  cp "$SHARED/models/$model" "$DEST/shared/models/"
done
du -sh "$DEST"

cat <<EOF
On the GPU machine (carry $DEST), begin the command with:
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site $DEST/whl/*.whl &&
  python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/site $DEST/whl/pycuda-*.tar.gz &&
  export PYTHONPATH=/tmp/site:\$PWD STAGESWAP_SHARED=\$PWD/$DEST/shared STAGESWAP_MODELS=\$PWD/$DEST/shared/models || exit;
then e.g.:
  python3 -m pytest -m gpu -p no:cacheprovider tests/test_gpu.py tests/test_ring.py && python3 benchmarks/bench_gpu.py
EOF
