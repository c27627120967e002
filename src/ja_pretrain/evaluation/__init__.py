"""How good is the model: held-out masked-LM and replaced-token-detection figures, and the run report.

- `heldout`: the evaluation text, packed into sequences and masked with a fixed seed, so that two
  models sharing a tokenizer are scored on exactly the same masks.
- `heldout_scoring`: masked-LM loss/accuracy/perplexity and replaced-token-detection accuracy,
  precision, recall, F1 and ROC AUC.
- `evaluate`: `evaluate_model(model_dir, corpus, ...)`, what `ja-pretrain evaluate` runs.
- `report`: `write_report(run_dir)`, what `ja-pretrain report` runs.
"""
