#!/usr/bin/env bash
# One prepared run on a machine with a CUDA GPU (under 8 minutes): the CUDA-marked tests and properties,
# the CUDA benchmarks, the count gate against bench/baselines/cuda.json (written, and said so, when it
# does not exist yet), the benchmark report, and a markdown summary with the date and the GPU's name.
#
#   OUT=/some/dir PYTHON=/path/to/python ci/gpu.sh      # defaults: OUT=ci-out/gpu, PYTHON=python3
#
# Needs a Python with a CUDA build of torch and the test and plot extras (pip install -e ".[test,plot]").
# Exit status: 0 when every step passed, 1 when a step or the gate failed, 2 when no GPU is visible.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-ci-out/gpu}"
PY="${PYTHON:-python3}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-gpu}"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
started=$(date -u +"%Y-%m-%d %H:%M:%S UTC")
t0=$SECONDS

if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "error: torch sees no CUDA device (python: $PY)" >&2
  exit 2
fi
gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -n1)
torch_gpu=$("$PY" -c "import torch; print(torch.cuda.get_device_name(0), '| torch', torch.__version__, '| CUDA', torch.version.cuda)")
echo "GPU: ${gpu:-unknown (no nvidia-smi)} | $torch_gpu"

status=0
declare -a steps=()
step() {  # step NAME SECONDS CMD...: run with a time limit, record the outcome
  local name=$1 limit=$2; shift 2
  local s=$SECONDS rc=0
  echo "== $name (limit ${limit}s)"
  timeout "$limit" "$@" || rc=$?
  steps+=("| $name | $([ $rc -eq 0 ] && echo ok || echo "FAILED (exit $rc)") | $((SECONDS - s)) s |")
  [ $rc -eq 0 ] || status=1
}

tests=(tests)
[ -d properties ] && tests+=(properties)
step "CUDA tests and properties (-m cuda)" 150 \
  "$PY" -m pytest "${tests[@]}" -m cuda -n 0 -q -p no:cacheprovider --junitxml "$OUT/cuda-tests.xml"
step "CUDA benchmarks (-m cuda)" 300 \
  "$PY" -m pytest bench -m cuda -n 0 -q -p no:cacheprovider --benchmark-json "$OUT/bench-cuda.json"

gate="not run (no benchmark JSON)"
if [ -s "$OUT/bench-cuda.json" ]; then
  if [ -f bench/baselines/cuda.json ]; then
    step "count gate vs bench/baselines/cuda.json" 60 \
      bash -c "'$PY' -m newllm.tools.gate '$OUT/bench-cuda.json' --baseline bench/baselines/cuda.json >'$OUT/gate.txt' 2>&1"
    gate=$(tail -n 40 "$OUT/gate.txt")
  else
    "$PY" -m newllm.tools.gate "$OUT/bench-cuda.json" --write-baseline bench/baselines/cuda.json \
      --command "ci/gpu.sh on ${gpu:-$torch_gpu}"
    cp bench/baselines/cuda.json "$OUT/cuda.json"
    gate="no CUDA baseline existed: wrote bench/baselines/cuda.json from this run (copy in $OUT/cuda.json); commit it"
    echo "$gate"
  fi
  step "benchmark report" 60 \
    "$PY" -m newllm bench-report "$OUT/bench-cuda.json" --title "CUDA benchmarks" \
    --markdown "$OUT/bench-cuda.md" --plot "$OUT/bench-cuda.png"
fi

{
  echo "# GPU run of ci/gpu.sh"
  echo
  echo "- date: $started"
  echo "- GPU (nvidia-smi): ${gpu:-unknown}"
  echo "- torch: $torch_gpu"
  echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "- total: $((SECONDS - t0)) s; result: $([ $status -eq 0 ] && echo PASSED || echo FAILED)"
  echo
  echo "| step | outcome | time |"
  echo "|---|---|---|"
  printf '%s\n' "${steps[@]}"
  echo
  echo "## Count gate"
  echo
  echo '```'
  echo "$gate"
  echo '```'
  [ -f "$OUT/bench-cuda.md" ] && { echo; sed 's/^#/##/' "$OUT/bench-cuda.md"; }
} >"$OUT/summary.md"
echo "summary: $OUT/summary.md"
exit $status
