"""Readers for the downstream tasks' files, in the formats their publishers distribute.

Each reader turns a file (or an archive or directory of files) into `Example`s and refuses bad
input with the file and line (or record) and what is wrong: a missing field, a label outside the
task's set, a record that is not JSON.

- JGLUE v1.3 (JSTS, JNLI, JCommonsenseQA, MARC-ja): JSON Lines, one example per line.
- chABSA: one JSON document per annotated report, `{"header": {"document_id"...}, "sentences":
  [{"sentence", "opinions": [{"target", "polarity", "from", "to"...}]}]}`: as the publisher's
  zip of `e*_ann.json` files, a directory of them, or JSON Lines with one document per line.
  One example per opinion: (sentence, target) -> polarity.
- livedoor news corpus: the publisher's `ldcc-*.tar.gz` (`text/CATEGORY/CATEGORY-ID.txt`: URL,
  date, title, body lines), a directory of that layout, or JSON Lines with `category`, `title`
  and `body`. One example per article: (title, body) -> category.
- JSQuAD (and SQuAD-format sets such as JaQuAD): one JSON object, `data[].paragraphs[]` with
  `context` and `qas[]` (`id`, `question`, `answers[]` of `text` and `answer_start`); one
  `QAExample` per question. Every answer must stand at its `answer_start` in the context.
- Wikipedia NER (Stockmark's ner-wikipedia-dataset): a JSON array of `{"curid", "text",
  "entities": [{"name", "span": [start, end], "type"}]}`; one `NERExample` per text. Entities
  that overlap an earlier one (nested or crossing) are dropped, keeping the one that starts
  first and, at the same start, the longer: BIO tags hold one entity per token.
- smoke: next-sentence pairs made from a corpus-format text (a blank line between documents).

Compressed JSON Lines (.gz, .xz, .bz2, .zst) are read transparently.
"""

from __future__ import annotations

import io
import json
import os
import random
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ja_pretrain.corpus.compression import InputStream, TruncatedInput
from ja_pretrain.corpus.sentences import split_sentences
from ja_pretrain.downstream.tasks import (
    CLASSIFICATION,
    LIVEDOOR_CATEGORIES,
    MULTIPLE_CHOICE,
    QUESTION_ANSWERING,
    REGRESSION,
    TOKEN_CLASSIFICATION,
    TaskSpec,
)
from ja_pretrain.errors import UserError


@dataclass(frozen=True)
class Example:
    """One labelled example. `pairs` holds one (text, paired text or None) per input sequence:
    one for classification and regression, one per choice for multiple choice. `label` is a
    float (regression) or the index of the class or choice. `group` is the document an example
    comes from, for splits by document."""

    uid: str
    pairs: tuple[tuple[str, str | None], ...]
    label: float | int
    group: str = ""


@dataclass(frozen=True)
class QAExample:
    """A question over a context; `answers` are (text, start character) in the context."""

    uid: str
    question: str
    context: str
    answers: tuple[tuple[str, int], ...]
    group: str = ""


@dataclass(frozen=True)
class NERExample:
    """A text and its entities as (start, end, type index) character spans, sorted, not overlapping."""

    uid: str
    text: str
    entities: tuple[tuple[int, int, int], ...]
    group: str = ""
    dropped: int = 0  # entities left out because they overlapped another


def read_json_lines(path: Path) -> Iterator[tuple[str, Any]]:
    """(where, record) for each non-blank line: where is "FILE:LINE"."""
    try:
        with InputStream(path) as raw, io.TextIOWrapper(raw.stream, encoding="utf-8") as text:
            for number, line in enumerate(text, start=1):
                if not line.strip():
                    continue
                where = f"{path}:{number}"
                try:
                    yield where, json.loads(line)
                except json.JSONDecodeError as err:
                    raise UserError(f"{where}: not valid JSON ({err.msg} at column {err.colno}); "
                                    "the file must hold one JSON object per line") from None
    except UnicodeDecodeError as err:
        raise UserError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}); "
                        "is this the task's published JSON Lines file?") from None
    except TruncatedInput as err:
        raise UserError(f"{path}: the compressed file ends early ({err}); download it again") from None


def require(record: Any, fields: tuple[str, ...], where: str, what: str, texts: tuple[str, ...] = ()) -> None:
    """`record` is an object with every one of `fields`, and the `texts` among them are strings."""
    if not isinstance(record, dict):
        raise UserError(f"{where}: expected a JSON object, got {type(record).__name__}")
    missing = [f for f in fields if f not in record]
    if missing:
        raise UserError(f"{where}: missing field {', '.join(repr(m) for m in missing)} "
                        f"({what} needs {', '.join(fields)})")
    for name in texts:
        if not isinstance(record[name], str):
            raise UserError(f"{where}: field {name!r} must be a string, got "
                            f"{json.dumps(record[name], ensure_ascii=False)[:60]}")


def class_index(spec: TaskSpec, value: Any, where: str) -> int:
    if isinstance(value, str) and value in spec.labels:
        return spec.labels.index(value)
    raise UserError(f"{where}: label {json.dumps(value, ensure_ascii=False)} is not one of {spec.title}'s labels "
                    f"({', '.join(spec.labels)})")


def _score(spec: TaskSpec, value: Any, where: str) -> float:
    low, high = spec.label_range or (float("-inf"), float("inf"))
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise UserError(f"{where}: label {json.dumps(value)} is not a number in {spec.title}'s range {low:g}-{high:g}")
    return float(value)


def _choice(spec: TaskSpec, value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < spec.num_choices:
        raise UserError(f"{where}: label {json.dumps(value)} is not a choice index 0-{spec.num_choices - 1}")
    return value


# -- JGLUE -----------------------------------------------------------------------------------

def _jglue_uid(record: dict, keys: tuple[str, ...], where: str) -> str:
    for key in keys:
        if key in record:
            return str(record[key])
    return where.rsplit(":", 1)[-1]  # the line number


def read_jglue(spec: TaskSpec, path: Path) -> list[Example]:
    """JSTS / JNLI (sentence1, sentence2, label), MARC-ja (sentence, label) and JCommonsenseQA
    (question, choice0..choice4, label) from the JSON Lines file at `path`."""
    examples = []
    for where, record in read_json_lines(path):
        if spec.kind == MULTIPLE_CHOICE:
            choices = tuple(f"choice{i}" for i in range(spec.num_choices))
            require(record, ("question", *choices, "label"), where, spec.title, texts=("question", *choices))
            label = _choice(spec, record["label"], where)
            pairs = tuple((record["question"], record[c]) for c in choices)
            uid = _jglue_uid(record, ("q_id",), where)
        elif spec.name == "marc_ja":
            require(record, ("sentence", "label"), where, spec.title, texts=("sentence",))
            label = class_index(spec, record["label"], where)
            pairs = ((record["sentence"], None),)
            uid = _jglue_uid(record, ("review_id",), where)
        else:
            require(record, ("sentence1", "sentence2", "label"), where, spec.title, texts=("sentence1", "sentence2"))
            label = _score(spec, record["label"], where) if spec.kind == REGRESSION else class_index(
                spec, record["label"], where)
            pairs = ((record["sentence1"], record["sentence2"]),)
            uid = _jglue_uid(record, ("sentence_pair_id",), where)
        examples.append(Example(uid=uid, pairs=pairs, label=label))
    return examples


# -- chABSA ----------------------------------------------------------------------------------

def _chabsa_documents(path: Path) -> Iterator[tuple[str, Any]]:
    """(where, document) from a zip, a directory of .json files, a .json file or JSON Lines."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.json") if not p.name.startswith("."))
        if not files:
            raise UserError(f"{path}: no *.json files; give the chABSA zip, its e*_ann.json files or a .jsonl file")
        for file in files:
            yield str(file), _load_json(file.read_bytes(), str(file))
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = sorted(n for n in archive.namelist() if n.endswith(".json") and "/." not in f"/{n}")
            if not names:
                raise UserError(f"{path}: the zip holds no .json files; is it chABSA-dataset.zip?")
            for name in names:
                yield f"{path}:{name}", _load_json(archive.read(name), f"{path}:{name}")
    elif path.suffix == ".json":
        yield str(path), _load_json(path.read_bytes(), str(path))
    else:
        yield from read_json_lines(path)


def _load_json(data: bytes, where: str) -> Any:
    try:
        return json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"{where}: not a JSON document ({err})") from None


def read_chabsa(spec: TaskSpec, path: Path) -> list[Example]:
    examples = []
    for where, document in _chabsa_documents(path):
        require(document, ("header", "sentences"), where, "a chABSA document")
        header = document["header"]
        doc_id = str(header.get("document_id") or header.get("edi_id") or where) if isinstance(header, dict) else where
        if not isinstance(document["sentences"], list):
            raise UserError(f"{where}: 'sentences' must be a list")
        for s_index, sentence in enumerate(document["sentences"]):
            here = f"{where}: sentences[{s_index}]"
            require(sentence, ("sentence", "opinions"), here, "a chABSA sentence", texts=("sentence",))
            text = sentence["sentence"]
            if not isinstance(sentence["opinions"], list):
                raise UserError(f"{here}: 'opinions' must be a list")
            for o_index, opinion in enumerate(sentence["opinions"]):
                at = f"{here}.opinions[{o_index}]"
                require(opinion, ("target", "polarity"), at, "a chABSA opinion", texts=("target",))
                label = class_index(spec, opinion["polarity"], at)
                sid = sentence.get("sentence_id", s_index)
                examples.append(Example(uid=f"{doc_id}:{sid}:{o_index}", pairs=((text, opinion["target"]),),
                                        label=label, group=doc_id))
    return examples


# -- livedoor --------------------------------------------------------------------------------

def _livedoor_article(data: bytes, where: str) -> tuple[str, str]:
    """(title, body) of an ldcc article file: URL, date, title, then the body."""
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise UserError(f"{where}: not UTF-8 text ({err.reason})") from None
    if len(lines) < 3:
        raise UserError(f"{where}: an ldcc article has a URL, a date and a title line before its body; "
                        f"this file has {len(lines)} line(s)")
    return lines[2], "\n".join(lines[3:]).strip("\n")


def _category_of(member: str) -> str | None:
    parts = member.replace("\\", "/").split("/")
    if len(parts) < 2 or not parts[-1].endswith(".txt") or parts[-1] == "LICENSE.txt":
        return None
    return parts[-2] if parts[-2] in LIVEDOOR_CATEGORIES and parts[-1].startswith(parts[-2]) else None


def _livedoor_records(path: Path) -> Iterator[tuple[str, str, str, str, str]]:
    """(where, uid, category, title, body) per article."""
    if path.is_dir():
        found = False
        for file in sorted(path.rglob("*.txt")):
            category = _category_of(str(file.relative_to(path)))
            if category:
                found = True
                yield (str(file), file.name, category, *_livedoor_article(file.read_bytes(), str(file)))
        if not found:
            raise UserError(f"{path}: no CATEGORY/CATEGORY-ID.txt article files (the ldcc text/ layout)")
    elif tarfile.is_tarfile(path):
        found = False
        with tarfile.open(path) as archive:
            for member in archive:
                category = _category_of(member.name) if member.isfile() else None
                if category:
                    found = True
                    data = archive.extractfile(member).read()
                    name = member.name.rsplit("/", 1)[-1]
                    yield (f"{path}:{member.name}", name, category, *_livedoor_article(data, f"{path}:{member.name}"))
        if not found:
            raise UserError(f"{path}: the archive holds no text/CATEGORY/CATEGORY-ID.txt articles; is it ldcc-*.tar.gz?")
    else:
        for where, record in read_json_lines(path):
            require(record, ("category", "title", "body"), where, "a livedoor JSON Lines record", texts=("title", "body"))
            uid = str(record.get("file") or record.get("url") or where.rsplit(":", 1)[-1])
            yield where, uid, record["category"], record["title"], record["body"]


def read_livedoor(spec: TaskSpec, path: Path) -> list[Example]:
    examples = []
    for where, uid, category, title, body in _livedoor_records(path):
        label = class_index(spec, category, where)
        examples.append(Example(uid=uid, pairs=((title, body),), label=label, group=uid))
    return examples


# -- SQuAD format (JSQuAD, JaQuAD) ---------------------------------------------------------

def _whole_json(path: Path) -> Any:
    try:
        with InputStream(path) as raw:
            return _load_json(raw.stream.read(), str(path))
    except TruncatedInput as err:
        raise UserError(f"{path}: the compressed file ends early ({err}); download it again") from None


def read_squad(spec: TaskSpec, path: Path) -> list[QAExample]:
    document = _whole_json(path)
    require(document, ("data",), str(path), "a SQuAD-format file")
    examples = []
    for a_index, article in enumerate(document["data"]):
        where = f"{path}: data[{a_index}]"
        require(article, ("paragraphs",), where, "a SQuAD article")
        title = str(article.get("title", a_index))
        for p_index, paragraph in enumerate(article["paragraphs"]):
            here = f"{where}.paragraphs[{p_index}]"
            require(paragraph, ("context", "qas"), here, "a SQuAD paragraph", texts=("context",))
            context = paragraph["context"]
            for q_index, qa in enumerate(paragraph["qas"]):
                at = f"{here}.qas[{q_index}]"
                require(qa, ("question", "answers"), at, "a SQuAD question", texts=("question",))
                uid = str(qa.get("id", f"{a_index}-{p_index}-{q_index}"))
                answers = tuple(_answer(answer, context, f"{at} (id {uid}).answers[{i}]")
                                for i, answer in enumerate(qa["answers"]))
                if not answers:
                    raise UserError(f"{at} (id {uid}): no answers; every question needs one (unanswerable "
                                    "questions are not supported)")
                examples.append(QAExample(uid=uid, question=qa["question"], context=context, answers=answers,
                                          group=title))
    return examples


def _answer(answer: Any, context: str, where: str) -> tuple[str, int]:
    require(answer, ("text", "answer_start"), where, "an answer", texts=("text",))
    start = answer["answer_start"]
    if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start <= len(context) - len(answer["text"]):
        raise UserError(f"{where}: answer_start {json.dumps(start)} is outside the context "
                        f"({len(context)} characters)")
    if context[start:start + len(answer["text"])] != answer["text"]:
        found = context[start:start + len(answer["text"])]
        raise UserError(f"{where}: the context at answer_start {start} reads {found!r}, not the answer "
                        f"{answer['text']!r}; fix answer_start")
    return answer["text"], start


# -- Wikipedia NER ---------------------------------------------------------------------------

def read_ner(spec: TaskSpec, path: Path) -> list[NERExample]:
    records = _whole_json(path)
    if not isinstance(records, list):
        raise UserError(f"{path}: expected a JSON array of {{curid, text, entities}} records")
    return [_ner_example(spec, record, f"{path}: record {i}", i) for i, record in enumerate(records)]


def _ner_example(spec: TaskSpec, record: Any, where: str, index: int) -> NERExample:
    require(record, ("text", "entities"), where, "a NER record", texts=("text",))
    text, article = record["text"], str(record.get("curid", index))
    where = f"{where} (curid {article})"
    spans = []
    for i, entity in enumerate(record["entities"]):
        at = f"{where}.entities[{i}]"
        require(entity, ("span", "type"), at, "an entity")
        span = entity["span"]
        if (not isinstance(span, list) or len(span) != 2 or not all(isinstance(x, int) for x in span)
                or not 0 <= span[0] < span[1] <= len(text)):
            raise UserError(f"{at}: span {json.dumps(span)} is not [start, end] within the text "
                            f"({len(text)} characters)")
        if entity["type"] not in spec.labels:
            raise UserError(f"{at}: unknown entity type {json.dumps(entity['type'], ensure_ascii=False)}; "
                            f"the types are {', '.join(spec.labels)}")
        if "name" in entity and text[span[0]:span[1]] != entity["name"]:
            raise UserError(f"{at}: the text at span {span} reads {text[span[0]:span[1]]!r}, not the entity's name "
                            f"{entity['name']!r}")
        spans.append((span[0], span[1], spec.labels.index(entity["type"])))
    kept: list[tuple[int, int, int]] = []
    for start, end, kind in sorted(spans, key=lambda s: (s[0], -s[1])):
        if not kept or start >= kept[-1][1]:
            kept.append((start, end, kind))
    # an article has several texts: the id is the article and the record's place in the file
    return NERExample(uid=f"{article}:{index}", text=text, entities=tuple(kept), group=article,
                      dropped=len(spans) - len(kept))


# -- smoke -----------------------------------------------------------------------------------

def corpus_documents(path: Path) -> list[list[str]]:
    """Documents (lists of sentences) of a corpus-format text or a corpus dir's files."""
    files = sorted(path.glob("train-*.txt")) + [path / "valid.txt"] if path.is_dir() else [path]
    documents: list[list[str]] = []
    for file in files:
        if not file.is_file():
            continue
        current: list[str] = []
        with open(file, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line:
                    current.extend(s for s in split_sentences(line) if s.strip())
                elif current:
                    documents.append(current)
                    current = []
        if current:
            documents.append(current)
    return documents


def read_smoke(spec: TaskSpec, path: Path, seed: int = 0) -> list[Example]:
    """Next-sentence pairs: each sentence with the one after it ("next") or with a sentence of
    another document ("random"), alternately, so the classes are balanced."""
    documents = corpus_documents(path)
    if len(documents) < 2:
        raise UserError(f"{path}: the smoke task needs at least two documents (a blank line between documents)")
    rng = random.Random(seed)
    examples = []
    for d_index, sentences in enumerate(documents):
        for i in range(len(sentences) - 1):
            if (d_index + i) % 2 == 0:
                second, label = sentences[i + 1], 0
            else:
                other = rng.choice([j for j in range(len(documents)) if j != d_index] or [d_index])
                second, label = rng.choice(documents[other]), 1
            examples.append(Example(uid=f"{d_index}:{i}", pairs=((sentences[i], second),), label=label,
                                    group=str(d_index)))
    return examples


def read_task_file(spec: TaskSpec, path: str | os.PathLike) -> list[Example] | list[QAExample] | list[NERExample]:
    """All examples of one file (or archive or directory) of `spec`'s data."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file or directory")
    if spec.name == "chabsa":
        examples = read_chabsa(spec, path)
    elif spec.name == "livedoor":
        examples = read_livedoor(spec, path)
    elif spec.name == "smoke":
        examples = read_smoke(spec, path)
    elif spec.kind == QUESTION_ANSWERING:
        examples = read_squad(spec, path)
    elif spec.kind == TOKEN_CLASSIFICATION:
        examples = read_ner(spec, path)
    elif spec.kind in (REGRESSION, CLASSIFICATION, MULTIPLE_CHOICE):
        if path.is_dir():
            raise UserError(f"{path}: a directory; give the {spec.title} JSON Lines file (e.g. train-v1.3.json)")
        examples = read_jglue(spec, path)
    else:  # pragma: no cover - every task kind is handled above
        raise UserError(f"{spec.name}: no reader")
    if not examples:
        raise UserError(f"{path}: no {spec.title} examples in it (an empty split); check the file")
    return examples
