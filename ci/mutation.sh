#!/usr/bin/env bash
# The mutation lane (docs/testing.md#mutation): mutmut on the modules of ci/mutation.toml, each against its
# fast tests, within a time budget; writes a per-module summary (.mutation/summary.{json,md} by default).
#   ci/mutation.sh [--budget MINUTES] [--jobs N] [--out DIR] [--rerun-survivors] [MODULE...]
# Needs mutmut 3 in the environment: pip install -c ci/constraints.txt -e ".[test,mutation]"
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
if ! "$PYTHON" -c "import mutmut" 2>/dev/null; then
    echo "error: mutmut is not installed for $PYTHON; expected it from: pip install -e \".[test,mutation]\"" >&2
    exit 2
fi
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec "$PYTHON" ci/mutation.py "$@"
