#!/usr/bin/env bash
# One-time set-up, safe to rerun: a virtual environment in .venv (or $JA_PRETRAIN_VENV) with
# ja-pretrain installed.
# torch is installed first as the pinned CPU wheel when no torch is importable, so pip never
# resolves a plain `torch` requirement to a multi-GB CUDA build on a CPU machine. To use a GPU
# build instead, install it into .venv before running this (or set JA_PRETRAIN_TORCH="torch==X").
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${JA_PRETRAIN_VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"
if ! python -c "import torch" >/dev/null 2>&1; then
  if [ -n "${JA_PRETRAIN_TORCH:-}" ]; then
    python -m pip install -q "$JA_PRETRAIN_TORCH"
  else
    # PyPI's Linux torch is the CUDA build; the CPU index's "2.13.0+cpu" sorts above it.
    python -m pip install -q --retries 2 --extra-index-url https://download.pytorch.org/whl/cpu "torch==2.13.0" \
      2>&1 | { grep -vE "^WARNING: (Location|Retrying)" || true; }
  fi
fi
# pip's notes about this machine's local wheel folders are noise; its exit status is kept.
python -m pip install -q -e ".[${JA_PRETRAIN_EXTRAS:-dev}]" 2>&1 | { grep -vE "^WARNING: Location" || true; }
python -c "import ja_pretrain, torch; print(f'ja-pretrain {ja_pretrain.__version__} with torch {torch.__version__} ready in $VENV')"
