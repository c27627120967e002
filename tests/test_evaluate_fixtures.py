"""Tiny tokenizer, corpus and models built in tmp_path for the evaluation and report tests
(imported by tests/test_evaluate_*.py and tests/test_report_*.py; the one test here checks the
fixture itself)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# Original sentences written for these tests.
DOCUMENTS = [
    ["今日は朝から雨が降っている。", "傘を持って駅まで歩いた。", "電車は少し遅れていた。"],
    ["会社の売上高は前年より増えた。", "営業利益も大きく伸びた。", "来期も増収を見込んでいる。"],
    ["猫が窓のそばで眠っている。", "犬は庭で遊んでいる。", "鳥が木の上で鳴いた。"],
    ["図書館で歴史の本を借りた。", "江戸時代の町の暮らしが書かれていた。", "夜まで読み続けた。"],
    ["新しい駅が町の北側にできた。", "駅の前には店が並んでいる。", "休日は多くの人が集まる。"],
    ["山に登ると空気が冷たかった。", "頂上から海が見えた。", "帰りは別の道を下った。"],
]


def write_corpus(path: Path, documents=DOCUMENTS, repeat: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    blocks = ["\n".join(doc) for doc in documents] * repeat
    path.write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
    return path


def write_tokenizer(directory: Path, documents=DOCUMENTS) -> Path:
    """A BertJapaneseTokenizer dir (MeCab ipadic words, WordPiece over a word+character vocab)."""
    import fugashi
    import ipadic

    tagger = fugashi.GenericTagger(ipadic.MECAB_ARGS + " -Owakati")
    words: Counter[str] = Counter()
    chars: set[str] = set()
    for doc in documents:
        for sentence in doc:
            for word in tagger.parse(sentence).split():
                words[word] += 1
                chars.update(word)
    vocab = SPECIALS + ["[unused0]", "[unused1]"]
    vocab += sorted(chars) + ["##" + c for c in sorted(chars)]
    vocab += [w for w, _ in words.most_common() if len(w) > 1]
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n", encoding="utf-8")
    config = {
        "tokenizer_class": "BertJapaneseTokenizer",
        "do_lower_case": False,
        "word_tokenizer_type": "mecab",
        "subword_tokenizer_type": "wordpiece",
        "mecab_kwargs": {"mecab_dic": "ipadic"},
        "model_max_length": 512,
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return directory


def vocab_size(tokenizer_dir: Path) -> int:
    return len((tokenizer_dir / "vocab.txt").read_text(encoding="utf-8").split("\n")) - 1


def save_model(model, tokenizer_dir: Path, out: Path) -> Path:
    import shutil

    model.save_pretrained(out)
    for name in ("vocab.txt", "tokenizer_config.json"):
        shutil.copy(tokenizer_dir / name, out / name)
    return out


def bert_config(vocab: int, hidden: int = 32, seed_layers: int = 1):
    from transformers import BertConfig

    return BertConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=seed_layers, num_attention_heads=2,
                      intermediate_size=2 * hidden, max_position_embeddings=64, pad_token_id=0)


def electra_config(vocab: int, hidden: int = 32):
    from transformers import ElectraConfig

    return ElectraConfig(vocab_size=vocab, embedding_size=16, hidden_size=hidden, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=2 * hidden, max_position_embeddings=64,
                         pad_token_id=0)


def random_bert(tokenizer_dir: Path, out: Path, seed: int = 0, hidden: int = 32) -> Path:
    import torch
    from transformers import BertForMaskedLM

    torch.manual_seed(seed)
    return save_model(BertForMaskedLM(bert_config(vocab_size(tokenizer_dir), hidden)), tokenizer_dir, out)


def test_fixture_tokenizer_loads_as_bert_japanese(tmp_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(write_tokenizer(tmp_path / "tok"))
    assert type(tok).__name__ == "BertJapaneseTokenizer"
    assert (tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id, tok.mask_token_id) == (0, 1, 2, 3, 4)
    ids = tok.convert_tokens_to_ids(tok.tokenize(DOCUMENTS[0][0]))
    assert ids and tok.unk_token_id not in ids
