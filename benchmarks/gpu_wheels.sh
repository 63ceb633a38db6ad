#!/bin/sh
# Prepares .whl/ (git-ignored): what benchmarks/gpu_acceptance.py needs on a lent GPU machine that its
# image lacks, as wheels for CPython 3.12 on x86-64 Linux, plus tunedeck's own wheel. That machine
# reaches no package registry; its image (the device library's KINDS.md, read 2026-11) has Python
# 3.12, torch 2.11, transformers 5.17, accelerate 1.15, huggingface_hub 1.33, tokenizers 0.23,
# safetensors 0.8, pyarrow, pandas, scipy, sacrebleu, psutil and nvidia-ml-py, and no trl, datasets,
# bitsandbytes or Liger. The pins are the versions the test suite runs (pyproject's floors); bitsandbytes
# and Liger are the newest that install here. flash-attn has no wheel on PyPI (it builds from source
# against CUDA), so its two paths report "not installed". Run from the repository with the venv active:
#     sh benchmarks/gpu_wheels.sh
# then on the machine: benchmarks/gpu_on_device.sh (carry [".whl"]).
set -eu
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
rm -rf .whl
mkdir .whl
# tunedeck itself (the engine the acceptance script drives), built from this tree
"$PY" -m pip wheel -q --no-deps --no-build-isolation -w .whl .
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
    --platform any -d .whl \
    transformers==5.24.0 trl==1.16.0 peft==0.21.2 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 \
    tomlkit==0.15.2 datasketch==2.0.0 liger-kernel==0.8.5 bitsandbytes==0.50.2
# the working tree (tracked and untracked-not-ignored files) and the carried folder travel together
# under 64 MiB; keep 2 MiB spare
wheels=$(du -cb .whl/* | tail -1 | cut -f1)
tree=$(git ls-files -co --exclude-standard -z | xargs -0 du -cb | tail -1 | cut -f1)
ls -1 .whl
echo "wheels $((wheels / 1048576)) MiB + working tree $((tree / 1048576)) MiB (limit 64 MiB)"
if [ $((wheels + tree)) -gt $((62 * 1048576)) ]; then
    echo "too large to carry: leave out bitsandbytes (its two paths then report 'not installed')" >&2
    exit 1
fi
