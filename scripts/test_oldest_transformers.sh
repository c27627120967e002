#!/usr/bin/env bash
# The model tests again, under the oldest transformers pyproject.toml allows. cpu_ops,
# selected_output and models/modernbert.py reach into transformers' BERT, ELECTRA and ModernBERT
# modules and masking utilities, whose names move between releases, and finetune uses its Auto
# classes and tokenizer truncation; this keeps the declared lower bound true. Uses .venv-oldest.
set -euo pipefail
cd "$(dirname "$0")/.."
JA_PRETRAIN_VENV=.venv-oldest bash scripts/setup.sh
OLDEST=$(.venv-oldest/bin/python - <<'PY'
import re, tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
spec = next(d for d in deps if d.startswith("transformers"))
print(re.search(r">=\s*([0-9][0-9.]*)", spec).group(1))
PY
)
.venv-oldest/bin/python -m pip install -q "transformers==$OLDEST.*" 2>&1 | { grep -vE "^WARNING: Location" || true; }
# Newer transformers (5.25 on) require `kernels`, which stays after the downgrade; the oldest one
# imports it when present and fails on its newer API. It does not need it: remove it.
if ! .venv-oldest/bin/python -m pip show -q transformers 2>/dev/null | grep -q "Requires:.*kernels"; then
  .venv-oldest/bin/python -m pip uninstall -y -q kernels 2>/dev/null || true
fi
.venv-oldest/bin/python -c "import transformers; print(f'testing with transformers {transformers.__version__}')"
exec .venv-oldest/bin/python -m pytest -q -n 2 --dist loadfile tests/test_selected_output.py tests/test_cpu_ops.py \
  tests/test_electra_model.py tests/test_bert_training.py tests/test_electra_training.py tests/test_electra_extract.py \
  tests/test_downstream_encoding.py tests/test_downstream_finetune.py tests/test_full_rows.py tests/test_modernbert.py "$@"
