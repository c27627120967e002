#!/usr/bin/env bash
# The main job on the bundled sample: set up .venv (if needed), then run configs/quickstart.yaml
# (corpus -> tokenizer -> micro BERT and micro ELECTRA -> extraction -> evaluation -> smoke-test
# fine-tuning -> report)
# into ./runs/quickstart. Rerunning skips what is up to date. Extra arguments go to the pipeline,
# e.g. `bash scripts/quickstart.sh bert.train_steps=300`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
. .venv/bin/activate
RUN_DIR=runs/quickstart
ja-pretrain pipeline configs/quickstart.yaml "run_dir=$RUN_DIR" "$@"
cat <<DONE

quickstart finished; what it made:
  BERT                   $RUN_DIR/bert/final  (loads with AutoModelForMaskedLM, AutoTokenizer)
  ELECTRA discriminator  $RUN_DIR/electra-extracted/discriminator
  ELECTRA generator      $RUN_DIR/electra-extracted/generator
  held-out figures       $RUN_DIR/evaluation/metrics.json
  downstream (smoke)     $RUN_DIR/finetune-bert/scores.json, $RUN_DIR/finetune-electra/scores.json
  report with plots      $RUN_DIR/report/report.md
  stage logs             $RUN_DIR/logs/
DONE
