#!/usr/bin/env bash
# Run HERE (a machine that reaches PyPI) before a device call: the wheels of roomtone's runtime dependencies that
# the device machine's CUDA image lacks (it has torch, numpy, scipy, sklearn, matplotlib, rich, typer, yaml, onnx*,
# safetensors; /work/.library/device/KINDS.md), for its python3 (3.12, x86-64), into .device-wheels/ (git-ignored;
# name it in the device call's carry).
set -euo pipefail
cd "$(dirname "$0")/../.."
py=${DEVICE_PYTHON_VERSION:-3.12}
rm -rf .device-wheels && mkdir -p .device-wheels
python3 -m pip download -q --only-binary=:all: --no-deps --implementation cp --python-version "$py" \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
  -d .device-wheels soundfile cffi pycparser soxr pyroomacoustics
ls -la .device-wheels
du -sh .device-wheels
