#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
# the Sudachi extra too, so the --word_tokenizer sudachi tests run rather than skip
JA_PRETRAIN_EXTRAS=dev,sudachi bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate
ruff check src tests benchmarks  # the rules are in pyproject.toml
exec python -m pytest -q -n 2 --dist loadfile "$@"
