#!/usr/bin/env bash
# Issue 20 item 4, the GPU numbers, as one prepared run (BENCHMARKS.md, section "GPU").
#
# Run from the repository root on a CUDA machine with torch and transformers installed. Optional
# wheels in .whl/ (TransformerLens, nnsight and their missing dependencies, an exact transformers)
# are installed into /tmp/site first; a tokenizer-only model cache may be given in .gpu/cache (no
# weights: every model here is random-init from a real Llama config, see _random_models.py).
# Each benchmark has its own time limit and writes its results as it goes, so a slow compile in
# one phase cannot lose the others. Results go to $OUT (default runs/gpu).
#
#     bash benchmarks/gpu.sh
set -u
OUT=${OUT:-runs/gpu}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
if ls .whl/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD
[ -d .gpu/cache ] && export OYSTER_STEER_CACHE=$PWD/.gpu/cache
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
export TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-/tmp/inductor-cache}
LOG=$OUT/gpu.log
{
    date -u
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
    $PY -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, torch.cuda.get_device_name())"
    nproc; uptime
} >"$OUT/machine.txt" 2>&1

phase() {  # phase NAME SECONDS COMMAND...
    local name=$1 limit=$2
    shift 2
    echo "=== $name (limit ${limit}s) $(date -u +%T): $*" >>"$LOG"
    local start=$SECONDS
    timeout --signal=INT --kill-after=10 "$limit" "$@" >>"$LOG" 2>&1
    echo "=== $name: exit $? after $((SECONDS - start))s" >>"$LOG"
}

phase overhead-1b "${LIMIT_1B:-170}" $PY benchmarks/overhead.py --gpu --shape llama-1b \
    --batch 1 32 --repeats 60 --gen-repeats 3 --compiled-variants unpatched plan \
    --out "$OUT/overhead-llama-1b.json"
phase overhead-8b "${LIMIT_8B:-220}" $PY benchmarks/overhead.py --gpu --shape llama-8b \
    --batch 1 32 --repeats 60 --gen-repeats 3 --compiled-variants unpatched plan \
    --out "$OUT/overhead-llama-8b.json"
phase capture "${LIMIT_CAPTURE:-75}" $PY benchmarks/capture.py --model llama-1b --device cuda \
    --prompts 32 --repeats 7
phase training "${LIMIT_TRAINING:-90}" $PY benchmarks/training.py --model llama-1b \
    --device cuda --site blocks.6.hook_resid_post --n 8 --steps 10 --repeats "${TRAIN_REPEATS:-3}"
phase gpu-tests "${LIMIT_TESTS:-60}" $PY -m pytest -q -p no:cacheprovider -m gpu tests/control
echo "=== done $(date -u +%T)" >>"$LOG"
