"""Published downstream figures of reference models, shown beside ours in the scorecard.

These are figures their publishers printed, not measured by ja-pretrain. All are on the JGLUE
dev sets; JSTS gives Pearson/Spearman and JSQuAD exact match/F1. Checked against the sources
named here on 2026-12-03 (the pages as stored by our search tool); the JGLUE version behind each
figure is the one its source used, which may be older than v1.3.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PublishedModel:
    name: str
    scores: dict[str, tuple[float, ...]]  # task -> the task's metrics in TaskSpec.metrics order
    source: str


PUBLISHED: tuple[PublishedModel, ...] = (
    PublishedModel(
        name="Tohoku BERT base v3",
        scores={"marc_ja": (0.957,), "jsts": (0.914, 0.876), "jnli": (0.906,), "jsquad": (0.878, 0.946),
                "jcommonsenseqa": (0.849,)},
        source="tohoku-nlp/bert-base-japanese-v3 as fine-tuned and reported by Retrieva in the "
               "retrieva-jp/bert-1.3b model card (huggingface.co/retrieva-jp/bert-1.3b), with the JGLUE "
               "paper's learning rates and epochs; Tohoku's own card gives no JGLUE figures",
    ),
    PublishedModel(
        name="UTokyo BERT small",
        scores={"jsts": (0.889, 0.841), "jnli": (0.841,), "jcommonsenseqa": (0.715,)},
        source="izumi-lab/deberta-v2-small-japanese model card (huggingface.co/izumi-lab/deberta-v2-small-japanese), "
               "mean of five seeds",
    ),
    PublishedModel(
        name="LINE DistilBERT base",
        scores={"marc_ja": (0.956,), "jsts": (0.892, 0.851), "jnli": (0.889,), "jsquad": (0.873, 0.933),
                "jcommonsenseqa": (0.761,)},
        source="line-corporation/line-distilbert-base-japanese model card "
               "(huggingface.co/line-corporation/line-distilbert-base-japanese)",
    ),
)
