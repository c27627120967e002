"""ja-pretrain: pretrain Japanese BERT and ELECTRA models from raw text to evaluated Hugging Face models."""

__version__ = "0.1.0"
