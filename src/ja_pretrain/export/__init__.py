"""Writing MODEL_DIR/final/: Hugging Face model dirs with tokenizer files, model card and manifest.

`export_final(objective, out_dir, **facts)` picks the exporter by `objective.kind` (the model
family): `ja_pretrain.export.bert.export_bert_final` for the masked-LM families (BERT,
ModernBERT) or `ja_pretrain.export.electra.export_electra_final`, both with the same signature:

    export_X_final(objective, out_dir, *, tokenizer_dir, params, options, dataset_dir, train_state,
                   last_train, last_valid, facts=None) -> Path

`params` is the ModelParameters, `options` the ObjectiveOptions, `train_state` the trainer's
checkpoint state (step, tokens_seen, global_batch, precision...), `last_train`/`last_valid` the
last train_log.jsonl records, `facts` extra lines for the model card (input_file, init_from).

`card` makes README.md a Hub model card (front matter, model-index) and keeps absolute local paths
out of final/; `model_dirs` finds the models under any MODEL_DIR (itself, final/, generator/ and
discriminator/) for every command that takes one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ja_pretrain.export.bert import export_bert_final
from ja_pretrain.export.electra import export_electra_final

EXPORTERS = {"bert": export_bert_final, "modernbert": export_bert_final, "electra": export_electra_final}


def export_final(objective: Any, out_dir: str | os.PathLike, **facts: Any) -> Path:
    return EXPORTERS[objective.kind](objective, out_dir, **facts)
