#!/usr/bin/env bash
# Run ON THE DEVICE machine, from the repository root, with .device-wheels carried (benchmarks/device/wheels.sh):
#   run(command="bash benchmarks/device/gpu.sh", carry=[".device-wheels"], timeout_s=480)
# Installs the carried wheels into the image's python3 (nothing is fetched there), checks that CUDA is seen,
# runs `python -m benchmarks gpu` (QUICK=1: --quick, a smoke run that saves nothing) and copies the section,
# BENCHMARKS.md and the log to $OUT. Copy $OUT's gpu.md to benchmarks/results/ here and run
# `python -c "from benchmarks.__main__ import rebuild; rebuild()"` to put it in BENCHMARKS.md.
set -uo pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
out=${OUT:-/tmp/roomtone-gpu-out}
mkdir -p "$out"
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
  python3 -m pip install -q --no-index --no-deps --find-links .device-wheels soundfile cffi pycparser soxr pyroomacoustics
  python3 -c "import torch, soundfile, soxr, pyroomacoustics; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  # a device call that sees no CUDA is a failure, not a skip (ALLOW_CPU=1: a dry run of this script elsewhere)
  [ -n "${ALLOW_CPU:-}" ] || python3 -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device seen')" || exit 3
  python3 -m benchmarks gpu ${QUICK:+--quick}
  rc=$?
  cp benchmarks/results/gpu.md BENCHMARKS.md "$out"/ 2>/dev/null || true
  exit $rc
} 2>&1 | tee "$out/gpu.log"
exit "${PIPESTATUS[0]}"
