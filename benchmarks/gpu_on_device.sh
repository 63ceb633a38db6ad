#!/bin/sh
# Runs benchmarks/gpu_acceptance.py on a lent GPU machine, from the repository root, with the wheels
# benchmarks/gpu_wheels.sh prepared in .whl/ (carried). Everything it reports lands in $OUT:
# nvidia-smi.txt, versions.txt, gpu_acceptance.log and gpu_acceptance.json (saved after every phase,
# "complete": false if the time limit stopped it). The script's own budgets end it near 8 minutes;
# the timeout here leaves the device command's 10-minute limit room for the install and the copy back.
set -u
OUT=${OUT:-.}
nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 3
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
python3 - >"$OUT/versions.txt" 2>&1 <<'PY'
import importlib.metadata as md
import platform
print("python", platform.python_version())
for name in ("torch", "transformers", "trl", "peft", "datasets", "accelerate", "huggingface_hub", "tokenizers",
             "safetensors", "pyarrow", "numpy", "bitsandbytes", "liger_kernel", "flash_attn", "nvidia-ml-py",
             "triton", "tunedeck"):
    try:
        print(name, md.version(name))
    except md.PackageNotFoundError:
        print(name, "missing")
PY
cat "$OUT/versions.txt"
timeout -s TERM 540 python3 benchmarks/gpu_acceptance.py --out "$OUT/gpu_acceptance.json" "$@" 2>&1 | tee "$OUT/gpu_acceptance.log"
