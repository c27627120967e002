"""The kinds of downstream task, one module each, all implementing `base.TaskKind`:

    kind                  module       model (transformers Auto class)     prediction
    classification        sequence     AutoModelForSequenceClassification  a class
    regression            sequence     AutoModelForSequenceClassification  a number (head in fp32)
    multiple_choice       choice       AutoModelForMultipleChoice          a choice
    question_answering    qa           AutoModelForQuestionAnswering       a span of the context
    token_classification  tokens       AutoModelForTokenClassification     entity spans
"""

from __future__ import annotations

from ja_pretrain.downstream.kinds.base import TaskKind
from ja_pretrain.downstream.kinds.choice import MultipleChoice
from ja_pretrain.downstream.kinds.qa import ExtractiveQA
from ja_pretrain.downstream.kinds.sequence import Regression, SequenceClassification
from ja_pretrain.downstream.kinds.tokens import TokenClassification
from ja_pretrain.downstream.tasks import (
    CLASSIFICATION,
    MULTIPLE_CHOICE,
    QUESTION_ANSWERING,
    REGRESSION,
    TOKEN_CLASSIFICATION,
    TaskSpec,
)

KINDS: dict[str, type[TaskKind]] = {
    CLASSIFICATION: SequenceClassification,
    REGRESSION: Regression,
    MULTIPLE_CHOICE: MultipleChoice,
    QUESTION_ANSWERING: ExtractiveQA,
    TOKEN_CLASSIFICATION: TokenClassification,
}


def task_kind(spec: TaskSpec) -> TaskKind:
    """The kind of `spec`, bound to it."""
    return KINDS[spec.kind](spec)
