"""The fast encoder gives exactly AutoTokenizer's ids for the saved tokenizer."""

import pytest

from ja_pretrain.errors import UserError
from ja_pretrain.tokenization.encoder import FastEncoder, encode_in_workers

from tokdata_support import sample_sentences, scratch, trained_tokenizer

# Inputs where a shortcut would go wrong: full-width forms and half-width kana (NFKC), literal
# special-token strings (transformers splits on them before MeCab), a word over 100 characters,
# "<digits>," (transformers' SentencePiece special case), quotes it rewrites, odd whitespace.
EDGE_CASES = [
    "ＡＢＣ　ｄｅｆ １２３ ﾃﾞｰﾀ",
    "[MASK]は東京[SEP]です[CLS]",
    "文末に[UNK]",
    "x" * 150 + " 長い単語",
    "12,345円と3,4,5 と 1,",
    "``引用'' と \"quote\"",
    "タブ\tと\u3000全角空白\u00a0と改行\x85あり",
    "   ",
    "",
    "絵文字😀と𠮷野家",
]

CASES = [("ipadic", "wordpiece", "unigram"), ("unidic_lite", "wordpiece", "unigram"),
         ("ipadic", "sentencepiece", "unigram"), ("unidic_lite", "sentencepiece", "unigram"),
         ("ipadic", "sentencepiece", "bpe")]


@pytest.mark.parametrize("mecab_dic, subwords, model", CASES)
def test_ids_equal_autotokenizer_for_every_sentence(mecab_dic, subwords, model):
    from transformers import AutoTokenizer

    directory = trained_tokenizer(mecab_dic, subwords, model)
    sentences = sample_sentences() + EDGE_CASES
    reference = AutoTokenizer.from_pretrained(directory)(sentences, add_special_tokens=False)["input_ids"]
    ours = FastEncoder.from_pretrained(directory).encode_sentences(sentences)
    mismatched = [s for s, a, b in zip(sentences, reference, ours, strict=True) if a != b]
    assert mismatched == []
    assert sum(map(len, ours)) > len(sentences)  # it really produced tokens


def test_word_starts_mark_the_first_piece_of_each_word():
    from transformers import AutoTokenizer

    directory = trained_tokenizer("ipadic", "wordpiece")
    hf = AutoTokenizer.from_pretrained(directory)
    sentences = sample_sentences()[:200]
    ids, starts = FastEncoder.from_pretrained(directory).encode_with_word_starts(sentences)
    for sentence, sentence_ids, flags in zip(sentences, ids, starts, strict=True):
        assert len(flags) == len(sentence_ids)
        tokens = hf.convert_ids_to_tokens(sentence_ids)
        # In WordPiece a continuation piece carries "##"; [UNK] stands for a whole word.
        assert [not t.startswith("##") for t in tokens] == flags
        words = hf.word_tokenizer.tokenize(sentence)
        assert sum(flags) == len(words)


def test_sentencepiece_word_starts_count_words():
    from transformers import AutoTokenizer

    directory = trained_tokenizer("ipadic", "sentencepiece")
    hf = AutoTokenizer.from_pretrained(directory)
    sentences = sample_sentences()[:100]
    _, starts = FastEncoder.from_pretrained(directory).encode_with_word_starts(sentences)
    for sentence, flags in zip(sentences, starts, strict=True):
        words = hf.word_tokenizer.tokenize(sentence)
        # every MeCab word gives at least its "▁" piece
        assert sum(flags) == len(words)


def _flat_job(encoder, sentences):
    ids, starts, lengths = encoder.encode_flat(sentences)
    return ids.tolist(), starts.tolist(), lengths.tolist()


def test_worker_processes_give_the_same_result_in_order():
    directory = trained_tokenizer("ipadic", "wordpiece")
    sentences = sample_sentences()[:400]
    jobs = [sentences[i : i + 50] for i in range(0, len(sentences), 50)]
    one = list(encode_in_workers(directory, jobs, _flat_job, workers=1))
    two = list(encode_in_workers(directory, jobs, _flat_job, workers=2, window=3))
    assert one == two
    assert sum(len(j[2]) for j in two) == len(sentences)


def test_cache_reset_keeps_ids(monkeypatch):
    import ja_pretrain.tokenization.encoder as encoder_module

    directory = trained_tokenizer("ipadic", "wordpiece")
    sentences = sample_sentences()[:300]
    expected = FastEncoder(directory).encode_sentences(sentences)
    monkeypatch.setattr(encoder_module, "CACHE_WORDS", 20)
    small = FastEncoder(directory)
    got = [small.encode_sentences([s])[0] for s in sentences]
    assert got == expected
    assert len(small._row_of) <= 20 + 200  # emptied along the way, not grown without bound


def test_special_ids_and_flat_output_types():
    encoder = FastEncoder.from_pretrained(trained_tokenizer("ipadic", "wordpiece"))
    assert encoder.special_ids == {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}
    ids, starts, lengths = encoder.encode_flat(["今日は晴れ。", "", "明日は雨。"])
    assert starts.dtype == bool and len(ids) == len(starts) == lengths.sum()
    assert lengths[1] == 0 and lengths[0] > 0


def test_tokenizer_dir_without_vocab_is_a_user_error():
    directory = scratch("novocab")
    source = trained_tokenizer("ipadic", "wordpiece")
    (directory / "tokenizer_config.json").write_text((source / "tokenizer_config.json").read_text())
    with pytest.raises(UserError, match="vocab.txt is missing"):
        FastEncoder.from_pretrained(directory)
    with pytest.raises(UserError, match="tokenizer directory not found"):
        FastEncoder.from_pretrained(directory / "nope")
