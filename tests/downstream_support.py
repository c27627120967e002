"""Shared by tests/test_downstream_*.py: task files in each publisher's format, written from
sentences made up for these tests, a tokenizer that covers them, and tiny models."""

from __future__ import annotations

import io
import json
import random
import tarfile
import zipfile
from pathlib import Path

from test_evaluate_fixtures import save_model, vocab_size, write_tokenizer

SUBJECTS = ["猫", "犬", "鳥", "子供", "男性", "女性"]
ACTIONS = ["走っています", "眠っています", "座っています", "遊んでいます"]
PLACES = ["公園で", "道路で", "部屋で", "海辺で"]
TARGETS = ["売上高", "営業利益", "経常利益", "受注高"]
TRENDS = {"positive": "増加しました", "negative": "減少しました", "neutral": "横ばいでした"}
CATEGORIES = ["sports-watch", "it-life-hack", "movie-enter"]
TOPICS = {"sports-watch": "試合で選手が得点した。", "it-life-hack": "新しいパソコンのソフトを試した。",
          "movie-enter": "映画の監督が新作を発表した。"}


def caption(rng: random.Random) -> tuple[str, str, str, str]:
    s, a, p = rng.choice(SUBJECTS), rng.choice(ACTIONS), rng.choice(PLACES)
    return f"{p}{s}が{a}。", s, a, p


def all_sentences() -> list[str]:
    """Every text the task fixtures can hold, for a tokenizer that knows their words."""
    texts = [f"{p}{s}が{a}。" for s in SUBJECTS for a in ACTIONS for p in PLACES]
    texts += [f"{s}は何をしていますか？" for s in SUBJECTS] + ACTIONS
    texts += [f"当期の{t}は前期に比べて{w}" for t in TARGETS for w in TRENDS.values()] + TARGETS
    texts += list(TOPICS.values()) + [f"{c}の記事" for c in CATEGORIES]
    return texts


def tokenizer_dir(root: Path) -> Path:
    return write_tokenizer(root / "tokenizer", documents=[all_sentences()])


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def _pair_records(n: int, seed: int, label_of) -> list[dict]:
    """JSTS/JNLI-style records: two captions and label_of(slots of the first, slots of the second)."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        a, *first = caption(rng)
        b, *second = caption(rng)
        records.append({"sentence_pair_id": str(i), "yjcaptions_id": f"{i}-0-1", "sentence1": a, "sentence2": b,
                        "label": label_of(first, second)})
    return records


def jsts_records(n: int, seed: int) -> list[dict]:
    """Similarity = 5/3 per shared slot (subject, action, place): learnable and graded."""
    return _pair_records(n, seed, lambda x, y: round(5 * sum(a == b for a, b in zip(x, y, strict=True)) / 3, 1))


def jnli_records(n: int, seed: int) -> list[dict]:
    """entailment when the subjects agree, contradiction when the actions differ, else neutral."""
    return _pair_records(n, seed, lambda x, y: "entailment" if x[0] == y[0] else (
        "contradiction" if x[1] != y[1] else "neutral"))


def jcqa_records(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    records = []
    for i in range(n):
        subject = rng.choice(SUBJECTS)
        choices = rng.sample(ACTIONS, 4) + [rng.choice(ACTIONS)]
        records.append({"q_id": 1000 + i, "question": f"{subject}は何をしていますか？",
                        **{f"choice{k}": c for k, c in enumerate(choices)}, "label": rng.randrange(5)})
    return records


def write_jglue(root: Path, n_train: int = 40, n_valid: int = 20) -> Path:
    """root/datasets/TASK-v1.3/{train,valid}-v1.3.json as the JGLUE repository lays them out."""
    datasets = root / "datasets"
    for task, make in (("jsts", jsts_records), ("jnli", jnli_records), ("jcommonsenseqa", jcqa_records)):
        write_jsonl(datasets / f"{task}-v1.3" / "train-v1.3.json", make(n_train, 1))
        write_jsonl(datasets / f"{task}-v1.3" / "valid-v1.3.json", make(n_valid, 2))
    return datasets


def chabsa_documents(n_docs: int = 10, seed: int = 3) -> list[dict]:
    rng = random.Random(seed)
    documents = []
    for d in range(n_docs):
        sentences = []
        for s in range(3):
            target, polarity = rng.choice(TARGETS), rng.choice(list(TRENDS))
            text = f"当期の{target}は前期に比べて{TRENDS[polarity]}"
            start = text.index(target)
            sentences.append({"sentence_id": s, "sentence": text, "opinions": [
                {"target": target, "category": "company#sales", "polarity": polarity, "from": start,
                 "to": start + len(target)}]})
        documents.append({"header": {"document_id": f"E{d:05d}", "document_name": f"会社{d}"},
                          "sentences": sentences})
    return documents


def write_chabsa_zip(path: Path, documents: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for doc in documents:
            archive.writestr(f"chABSA-dataset/{doc['header']['document_id']}_ann.json",
                             json.dumps(doc, ensure_ascii=False))
    return path


def livedoor_articles(per_category: int = 6, seed: int = 4) -> list[tuple[str, str, str]]:
    """(category, file name, article text in the ldcc format: URL, date, title, body)."""
    rng = random.Random(seed)
    articles = []
    for category in CATEGORIES:
        for i in range(per_category):
            body = TOPICS[category] + "\n" + caption(rng)[0]
            text = f"http://news.livedoor.com/article/detail/{i}/\n2012-01-01T00:00:00+0900\n{category}の記事\n{body}\n"
            articles.append((category, f"{category}-{1000 + i}.txt", text))
    return articles


def write_livedoor_tar(path: Path, articles) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as archive:
        for category, name, text in articles:
            data = text.encode("utf-8")
            info = tarfile.TarInfo(f"text/{category}/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        readme = b"livedoor news corpus\n"
        info = tarfile.TarInfo("text/README.txt")
        info.size = len(readme)
        archive.addfile(info, io.BytesIO(readme))
    return path


def tiny_bert(tokenizer: Path, out: Path, *, seed: int = 0, hidden: int = 32, layers: int = 1, plain: bool = False):
    """A randomly initialised BERT with the tokenizer beside it: BertForMaskedLM, or BertModel."""
    import torch
    from transformers import BertConfig, BertForMaskedLM, BertModel

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=vocab_size(tokenizer), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=2, intermediate_size=2 * hidden, max_position_embeddings=128,
                        pad_token_id=0)
    return save_model(BertModel(config) if plain else BertForMaskedLM(config), tokenizer, out)


def tiny_electra_discriminator(tokenizer: Path, out: Path, seed: int = 0) -> Path:
    import torch
    from transformers import ElectraConfig, ElectraForPreTraining

    torch.manual_seed(seed)
    config = ElectraConfig(vocab_size=vocab_size(tokenizer), embedding_size=16, hidden_size=32, num_hidden_layers=1,
                           num_attention_heads=2, intermediate_size=64, max_position_embeddings=128, pad_token_id=0)
    return save_model(ElectraForPreTraining(config), tokenizer, out)
