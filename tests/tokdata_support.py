"""Shared by tests/test_tokenizer_*.py and tests/test_dataset_*.py: the bundled sample corpus
as sentences and documents, corpus directories in the corpus-stage layout, and tokenizers
trained once per test process (training one on the sample takes about a second)."""

from __future__ import annotations

import atexit
import functools
import re
import shutil
import tempfile
from pathlib import Path

from ja_pretrain.resources import sample_corpus_path

_ROOT = Path(tempfile.mkdtemp(prefix="tokdata-tests-"))
atexit.register(shutil.rmtree, _ROOT, True)

# Used only while the bundled sample is absent (it is written alongside this code).
_FALLBACK = [
    ["吾輩は猫である。", "名前はまだ無い。", "どこで生れたかとんと見当がつかぬ。"],
    ["東京都は日本の首都である。", "人口は約1400万人で、23の特別区がある。", "ＪＲ山手線は環状運転をしている。"],
    ["今日は朝から雨が降っている。", "傘を持って駅まで歩いた。", "電車は少し遅れていた。", "会社には9時に着いた。"],
    ["当社の売上高は前年同期比12.5%増の3,456億円となりました。", "営業利益は1,234億円でした。"],
    ["ﾃﾞｼﾞﾀﾙ化が進んでいる。", "ＡＩの研究は盛んだ。", "機械学習モデルを訓練するには大量のデータが必要だ。"],
    ["春は桜が咲く。", "夏は海で泳ぐ。", "秋は紅葉を見に行く。", "冬は雪が降る。"],
] * 4


def sample_documents() -> list[list[str]]:
    """Documents (lists of sentences) from the bundled sample, split after 。！？."""
    path = sample_corpus_path()
    if not path.is_file():
        return [list(d) for d in _FALLBACK]
    documents = []
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        sentences = [s.strip() for line in block.splitlines() for s in re.split(r"(?<=[。！？])", line) if s.strip()]
        if sentences:
            documents.append(sentences)
    return documents


def sample_sentences() -> list[str]:
    return [s for d in sample_documents() for s in d]


def write_corpus(directory: Path, documents: list[list[str]], valid: list[list[str]] | None = None,
                 shards: int = 2) -> Path:
    """A corpus dir as `ja-pretrain corpus` writes it (train-NNNNN.txt + valid.txt), no manifest."""
    directory.mkdir(parents=True, exist_ok=True)
    per = -(-len(documents) // shards)
    for i in range(shards):
        part = documents[i * per : (i + 1) * per]
        (directory / f"train-{i:05d}.txt").write_text("\n\n".join("\n".join(d) for d in part) + "\n", encoding="utf-8")
    if valid is not None:
        (directory / "valid.txt").write_text("\n\n".join("\n".join(d) for d in valid) + "\n", encoding="utf-8")
    return directory


@functools.lru_cache(maxsize=None)
def sample_corpus() -> Path:
    documents = sample_documents()
    n_valid = max(1, len(documents) // 10)
    return write_corpus(_ROOT / "corpus", documents[n_valid:], documents[:n_valid])


@functools.lru_cache(maxsize=None)
def trained_tokenizer(mecab_dic: str = "ipadic", subwords: str = "wordpiece", model: str = "unigram") -> Path:
    from ja_pretrain.tokenization.train import train_tokenizer

    out = _ROOT / f"tokenizer-{mecab_dic}-{subwords}-{model}"
    return train_tokenizer(sample_corpus(), out, mecab_dic_type=mecab_dic, tokenizer_type=subwords,
                           sentencepiece_model=model, vocab_size=1200 if subwords == "wordpiece" else 2500,
                           min_frequency=2, limit_alphabet=800, num_unused_tokens=3, workers=1)


@functools.lru_cache(maxsize=None)
def raw_text_tokenizer(model: str = "unigram") -> Path:
    """SentencePiece on the raw sample text, no word segmenter (`--word_tokenizer none`)."""
    from ja_pretrain.tokenization.train import train_tokenizer

    return train_tokenizer(sample_corpus(), _ROOT / f"tokenizer-none-{model}", word_tokenizer="none",
                           sentencepiece_model=model, vocab_size=2500, num_unused_tokens=3, workers=1)


def scratch(name: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=_ROOT))
    return path
