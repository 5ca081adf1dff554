#!/usr/bin/env bash
# Real-size figures on one GPU, one command: Qwen2-VL-2B and -7B (random weights, the configs in
# benchmarks/configs/), bf16; scoring, generation and LoRA-step memory (see benchmarks/gpu.py).
# Writes benchmarks/results/gpu.json; about 3-5 minutes on an H100 (budget: 8). Runs in $PYTHON, else
# .venv's Python, else python3, which needs vskip and a CUDA build of torch installed.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
  PYTHON=python3
  [ -x .venv/bin/python ] && PYTHON=.venv/bin/python
fi
"$PYTHON" -c 'import sys, torch, vskip; sys.exit(0 if torch.cuda.is_available() else
  f"gpu.sh: torch {torch.__version__} in {sys.executable} sees no CUDA GPU; install a CUDA build of torch "
  "(README: Using a real checkpoint) or set PYTHON. To try the code on a CPU: python benchmarks/gpu.py --tiny")'
exec "$PYTHON" benchmarks/gpu.py --out benchmarks/results/gpu.json "$@"
