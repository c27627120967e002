"""MODEL_DIR/final/ for a masked-LM model (BERT, ModernBERT): save_pretrained + the tokenizer
files + README.md model card + manifest.

The directory loads with `AutoModelForMaskedLM` (`AutoModelForPreTraining` for a BERT trained
with NSP) and `AutoTokenizer` and nothing of ours. It is written under a temporary name and
renamed when complete; manifest.json is written last. The model card's architecture lines beyond
the widths come from the model family (`ModelFamily.card_rows`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ja_pretrain.config.forms import form_option
from ja_pretrain.export.card import portable
from ja_pretrain.export.common import LICENSE_LINE, figure_rows, training_rows, usage_lines, write_final
from ja_pretrain.models.bert import BERT
from ja_pretrain.models.family import ModelFamily
from ja_pretrain.tokenization.files import tokenizer_summary
from ja_pretrain.utils.manifest import read_manifest


def model_card(*, architecture: str, params: Any, options: Any, tokenizer_config: dict, train_state: dict,
               dataset_manifest: dict | None, last_train: dict, last_valid: dict, facts: dict,
               family: ModelFamily = BERT) -> str:
    auto = "AutoModelForPreTraining" if architecture == "BertForPreTraining" else "AutoModelForMaskedLM"
    data = portable(facts.get("input_file") or (dataset_manifest or {}).get("inputs", {}).get("corpus_dir", "n/a"))
    counts = (dataset_manifest or {}).get("counts", {})
    lines = [
        f"# Japanese {family.title} ({params.model_type}) pretrained with ja-pretrain",
        "",
        f"A `{architecture}` trained from scratch by `ja-pretrain run-pretraining`"
        + (f", starting from the weights of `{portable(facts['init_from'])}`" if facts.get("init_from") else "") + ".",
        "",
        *usage_lines(auto, tokenizer_config.get("tokenizer_class", "BertJapaneseTokenizer"),
                     auto_tokenizer=family.auto_tokenizer_reads_class),
        "",
        "## Data",
        f"- input: `{data}`",
        f"- dataset: form `{form_option(train_state.get('form', 'packed'))}`, sequence length {params.sequence_length}"
        + "".join(f", {k.replace('_', ' ')} {v}" for k, v in counts.items()
                  if isinstance(v, (int, float)) and k.split("_")[-1] in ("documents", "sentences", "tokens", "samples")),
        "",
        "## Tokenizer",
        f"- {tokenizer_summary(tokenizer_config)}",
        f"- vocabulary: {facts.get('vocab_size', 'n/a')} entries, [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4",
        "",
        "## Model and training",
        "| setting | value |",
        "| :-- | :-- |",
        f"| preset | {params.model_type} |",
        f"| layers / hidden / heads / FFN | {params.number_of_layers} / {params.hidden_size} / "
        f"{params.attention_heads} / {params.ffn_inner_hidden_size} |",
        *family.card_rows(params),
        *training_rows(params, train_state, f"{params.mask_percent:g}% dynamic, 80/10/10"
                       + (", whole-word (MeCab words)" if options.whole_word_mask else "")),
        *([f"| next-sentence prediction | {'yes' if architecture == 'BertForPreTraining' else 'no'} |"]
          if family.next_sentence_prediction else []),
        "",
        "## Held-out figures (final step)",
        "| split | loss | MLM loss | MLM accuracy |" + (" NSP accuracy |" if "nsp_accuracy" in last_valid else ""),
        "| :-- | --: | --: | --: |" + (" --: |" if "nsp_accuracy" in last_valid else ""),
    ]
    columns = ("loss", "mlm_loss", "mlm_accuracy") + (("nsp_accuracy",) if "nsp_accuracy" in last_valid else ())
    lines += figure_rows(columns, last_valid, last_train)
    if last_valid:
        lines.append(f"\nHeld-out: the first {last_valid.get('samples')} samples of the valid split, with fixed masks.")
    lines.append(LICENSE_LINE)
    return "\n".join(lines) + "\n"


def export_bert_final(objective: Any, out_dir: str | os.PathLike, *, tokenizer_dir: str | os.PathLike, params: Any,
                      options: Any, dataset_dir: str | os.PathLike, train_state: dict, last_train: dict,
                      last_valid: dict, facts: dict | None = None) -> Path:
    """Write `out_dir` (normally MODEL_DIR/final) for a trained MaskedLMObjective; returns the path."""
    facts = dict(facts or {})
    model, family = objective.model, objective.family
    architecture = type(model).__name__
    tokenizer_config_path = Path(tokenizer_dir) / "tokenizer_config.json"
    tokenizer_config = json.loads(tokenizer_config_path.read_text(encoding="utf-8")) if tokenizer_config_path.is_file() else {}
    facts.setdefault("vocab_size", model.config.vocab_size)
    card = model_card(architecture=architecture, params=params, options=options, tokenizer_config=tokenizer_config,
                      train_state=train_state, dataset_manifest=read_manifest(dataset_dir), last_train=last_train,
                      last_valid=last_valid, facts=facts, family=family)
    return write_final(out_dir, save=model.save_pretrained, architecture=architecture, card=card,
                       tokenizer_dir=tokenizer_dir, params=params, options=options, dataset_dir=dataset_dir,
                       train_state=train_state, last_train=last_train, last_valid=last_valid, facts=facts,
                       tokenizer_settings=family.tokenizer_settings(params))
