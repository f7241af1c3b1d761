#!/usr/bin/env bash
# The GPU figures of issue #14 in one short run (for a session that is lent a GPU machine):
# StyleGAN3-T/-R and StyleGAN2 config-f at 1024 px, batch 1 and 4, fp32 and fp16, on CUDA.
#   PYTHON=/path/to/python-with-cuda-torch bench/gpu.sh > gpu.txt
# Prints the GPU, then bench/generator.py's tables (copy them into BENCHMARKS.md with the command).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PYTHON" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))'
"$PYTHON" bench/generator.py --device cuda --res 1024 --batch 1 4 --precision fp32 fp16 --reps 3 --baseline-max-batch 1
"$PYTHON" bench/generator.py --device cuda --arch sg3 --res 1024 --batch 1 4 --precision fp32 fp16 --reps 3 --reps-large 3
