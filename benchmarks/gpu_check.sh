#!/usr/bin/env bash
# The GPU check as one command (benchmarks/gpu_check.py): stops at once without a CUDA GPU, bounds the
# run to 13 minutes, and keeps its output beside the JSON. On the device machine the results go to
# $OUT (what comes back from it), elsewhere to benchmarks/results/.
#   benchmarks/gpu_check.sh [gpu_check.py options]
set -euo pipefail
cd "$(dirname "$0")/.."
out_dir="${OUT:-benchmarks/results}"
mkdir -p "$out_dir"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 'gpu_check: no CUDA GPU here (torch.cuda.is_available() is False)')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
timeout 780 python benchmarks/gpu_check.py --out "$out_dir/gpu.json" "$@" 2>&1 | tee "$out_dir/gpu_check.log"
