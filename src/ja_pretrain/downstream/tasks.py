"""The downstream tasks: what each one reads, predicts and scores, and its published protocol.

Every task is a `TaskSpec`. Three shapes cover them:

- regression: one score per text pair (JSTS); the model has one output, trained with MSE.
- classification: a class per text or text pair (JNLI, MARC-ja, chABSA, livedoor, smoke).
- multiple_choice: the model scores each (question, choice) pair and the best scores wins
  (JCommonsenseQA).
- question_answering: the answer is a span of the context, found by start and end scores over
  its tokens (JSQuAD), windows of the context with a stride where it is too long.
- token_classification: a BIO label per token, read back as character spans of named entities
  (Wikipedia NER).

The maximum lengths and batch sizes are the JGLUE fine-tuning README's
(github.com/yahoojapan/JGLUE, fine-tuning/README.md: 512 for MARC-ja, 128 for JSTS and JNLI, 64
and batch 64 for JCommonsenseQA, 384 with a stride for JSQuAD, batch 32 otherwise); the tasks
JGLUE does not cover take 128 (chABSA and NER sentences) and 512 (livedoor articles).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ja_pretrain.errors import UserError

REGRESSION = "regression"
CLASSIFICATION = "classification"
MULTIPLE_CHOICE = "multiple_choice"
QUESTION_ANSWERING = "question_answering"
TOKEN_CLASSIFICATION = "token_classification"

# How the dev split is found: the publisher's own train/valid files, or a seeded split by
# document of one collection (chABSA and livedoor publish no split).
SPLIT_FILES = "files"
SPLIT_DOCUMENTS = "documents"

# The grid the JGLUE baselines searched (the JGLUE paper and its fine-tuning README): learning
# rates 5e-5, 3e-5 and 2e-5, 3 and 4 epochs; the best point on dev is the one reported.
DEFAULT_LEARNING_RATES = (5e-5, 3e-5, 2e-5)
DEFAULT_EPOCHS = (3, 4)
# `finetune --quick`: one point of that grid, a quick look (marked as not comparable).
QUICK_LEARNING_RATES = (5e-5,)
QUICK_EPOCHS = (4,)

# The 8 entity types of the Stockmark Wikipedia NER data set (ner-wikipedia-dataset v2.0).
NER_TYPES = ("人名", "法人名", "政治的組織名", "その他の組織名", "地名", "施設名", "製品名", "イベント名")

LIVEDOOR_CATEGORIES = ("dokujo-tsushin", "it-life-hack", "kaden-channel", "livedoor-homme", "movie-enter",
                       "peachy", "smax", "sports-watch", "topic-news")


@dataclass(frozen=True)
class TaskSpec:
    name: str
    title: str
    kind: str
    labels: tuple[str, ...]  # class names in output order; () for regression
    metrics: tuple[str, ...]  # the first is the one the learning rate is chosen by
    max_length: int
    batch_size: int
    split: str
    source: str  # where the data is published
    num_choices: int = 1
    label_range: tuple[float, float] | None = None  # regression labels must lie in it
    dir_names: tuple[str, ...] = field(default=())  # sub-directories of --data that hold the task

    @property
    def token_labels(self) -> tuple[str, ...]:
        """BIO labels of a token-classification task: O, then B- and I- of each type."""
        return ("O", *(f"{prefix}-{t}" for t in self.labels for prefix in ("B", "I")))

    @property
    def primary_metric(self) -> str:
        return self.metrics[0]


def _jglue(name: str, title: str, kind: str, labels: tuple[str, ...], metrics: tuple[str, ...], max_length: int,
           batch_size: int = 32, **extra) -> TaskSpec:
    return TaskSpec(name=name, title=title, kind=kind, labels=labels, metrics=metrics, max_length=max_length,
                    batch_size=batch_size, split=SPLIT_FILES,
                    source="JGLUE v1.3, github.com/yahoojapan/JGLUE (CC BY-SA 4.0)",
                    dir_names=(f"{name}-v1.3", f"{name}-v1.2", f"{name}-v1.1", name), **extra)


TASKS: dict[str, TaskSpec] = {spec.name: spec for spec in (
    _jglue("jsts", "JSTS", REGRESSION, (), ("pearson", "spearman"), 128, label_range=(0.0, 5.0)),
    _jglue("jnli", "JNLI", CLASSIFICATION, ("contradiction", "entailment", "neutral"), ("accuracy",), 128),
    _jglue("jcommonsenseqa", "JCommonsenseQA", MULTIPLE_CHOICE, (), ("accuracy",), 64, batch_size=64,
           num_choices=5),
    _jglue("marc_ja", "MARC-ja", CLASSIFICATION, ("negative", "positive"), ("accuracy",), 512),
    _jglue("jsquad", "JSQuAD", QUESTION_ANSWERING, (), ("exact_match", "f1"), 384),
    TaskSpec(name="chabsa", title="chABSA", kind=CLASSIFICATION, labels=("negative", "neutral", "positive"),
             metrics=("accuracy", "macro_f1"), max_length=128, batch_size=32, split=SPLIT_DOCUMENTS,
             source="chABSA-dataset, github.com/chakki-works/chABSA-dataset (CC BY 4.0)",
             dir_names=("chABSA-dataset", "chabsa")),
    TaskSpec(name="livedoor", title="livedoor news", kind=CLASSIFICATION, labels=LIVEDOOR_CATEGORIES,
             metrics=("accuracy", "macro_f1"), max_length=512, batch_size=32, split=SPLIT_DOCUMENTS,
             source="livedoor news corpus ldcc-20140209, RONDHUIT (CC BY-ND 2.1 JP)",
             dir_names=("livedoor", "ldcc-20140209", "text")),
    TaskSpec(name="ner", title="Wikipedia NER", kind=TOKEN_CLASSIFICATION, labels=NER_TYPES,
             metrics=("f1", "precision", "recall"), max_length=128, batch_size=32, split=SPLIT_DOCUMENTS,
             source="ner-wikipedia-dataset v2.0, github.com/stockmarkteam/ner-wikipedia-dataset (CC BY-SA 3.0)",
             dir_names=("ner-wikipedia-dataset", "ner-wikipedia")),
    TaskSpec(name="smoke", title="smoke test (next sentence, bundled sample)", kind=CLASSIFICATION,
             labels=("next", "random"), metrics=("accuracy",), max_length=128, batch_size=16,
             split=SPLIT_DOCUMENTS, source="built by ja-pretrain from a corpus (default: its bundled sample)"),
)}


def get_task(name: str) -> TaskSpec:
    try:
        return TASKS[name]
    except KeyError:
        raise UserError(f"--task {name!r}: unknown task; choose from {', '.join(TASKS)}") from None
