"""A tokenizer without MeCab (`train-tokenizer --word_tokenizer none`): SentencePiece on the raw
NFKC text, saved as tokenizer.json. AutoTokenizer loads it where fugashi cannot be imported; the
fast encoder gives its ids, word starts and character offsets; caches see its files and options;
whole-word masking refuses it; a BERT pretrained on it answers JSQuAD from the context's own
characters."""

import json
import re
import shutil
import subprocess
import sys
import unicodedata

import numpy as np
import pytest

from ja_pretrain.cli import main
from ja_pretrain.dataset import build_dataset
from ja_pretrain.dataset.build import tokenizer_fingerprint
from ja_pretrain.dataset.store import TokenStore
from ja_pretrain.errors import UserError
from ja_pretrain.tokenization.encoder import FastEncoder
from ja_pretrain.tokenization.train import train_tokenizer

from tokdata_support import raw_text_tokenizer, sample_corpus, sample_documents, sample_sentences, scratch

MODELS = ["unigram", "bpe"]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[unused0]", "[unused1]", "[unused2]"]
# Where a shortcut would go wrong: NFKC (one character to three, two to one, full-width forms),
# spaces (leading, repeated, full-width, tab), characters outside the vocabulary (byte
# fallback), outside the BMP, special-token strings in the text, combining marks.
TRICKY = [
    "㈱ＡＢＣは１２３円の利益を上げた。",
    "ｶﾞｷﾞｸﾞとﾊﾟｿｺﾝは半角カナ。",
    "絵文字😀と𠮷野家の丼。",
    "   先頭の空白と　全角空白、\tタブ  二つの空白。 ",
    "ｘｙｚｚｙ未知語ꙮの文字。",
    "Python 3.11 を pip install でインストールした。",
    "[MASK]と[SEP]を含む文。",
    "ア\u3099と\u1100\u1161\u11a8の合成。",
    "",
    "   ",
]
CONTEXT = "本社 [SEP] ＡＢＣ株式会社は東京に本社を置く。㈱ＸＹＺは大阪にあり、ｶﾞｽ事業を営む。  Python も使う。"
BLOCKED = ("fugashi", "MeCab", "ipadic", "unidic", "unidic_lite")


@pytest.fixture(scope="module", params=MODELS)
def raw(request):
    from transformers import AutoTokenizer

    directory = raw_text_tokenizer(request.param)
    return directory, FastEncoder(directory), AutoTokenizer.from_pretrained(directory)


def _child_without_fugashi(code: str) -> str:
    """Run `code` in a Python where importing fugashi or any MeCab dictionary fails."""
    blocker = (
        "import sys\n"
        "class Blocker:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.partition('.')[0] in {BLOCKED!r}:\n"
        "            raise ImportError(f'No module named {name!r} (blocked by the test)')\n"
        "sys.meta_path.insert(0, Blocker())\n"
    )
    result = subprocess.run([sys.executable, "-c", blocker + code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_autotokenizer_loads_it_where_fugashi_cannot_be_imported(tmp_path):
    """From the tokenizer dir, and from model dirs (BERT, ModernBERT) it was copied into, as
    `final/` holds it: transformers picks its class by the model type there too."""
    from transformers import BertConfig, ModernBertConfig

    directories = []
    for model in MODELS:
        source = raw_text_tokenizer(model)
        directories.append(source)
        for name, config in (("bert", BertConfig(vocab_size=2500)), ("modernbert", ModernBertConfig(vocab_size=2500))):
            target = tmp_path / f"{model}-{name}"
            shutil.copytree(source, target)
            config.save_pretrained(target)
            directories.append(target)
    texts = sample_sentences()[:300] + TRICKY
    code = (
        "import json\n"
        "try:\n"
        "    import fugashi\n"
        "except ImportError:\n"
        "    pass\n"
        "else:\n"
        "    raise SystemExit('the blocker let fugashi in')\n"
        "from transformers import AutoTokenizer\n"
        "from ja_pretrain.tokenization.encoder import FastEncoder\n"
        f"directories, texts = {[str(d) for d in directories]!r}, json.loads({json.dumps(texts, ensure_ascii=False)!r})\n"
        "out = []\n"
        "for d in directories:\n"
        "    tok = AutoTokenizer.from_pretrained(d)\n"
        "    out.append({'class': type(tok).__name__, 'ids': tok(texts, add_special_tokens=False)['input_ids'],\n"
        "                'fast': FastEncoder(d).encode_sentences(texts),\n"
        "                'specials': [tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id,\n"
        "                             tok.mask_token_id],\n"
        "                'masked': tok('東京は[MASK]の首都。')['input_ids']})\n"
        "assert not [m for m in sys.modules if m.partition('.')[0] in " + repr(BLOCKED) + "]\n"
        "print(json.dumps(out))\n"
    )
    results = json.loads(_child_without_fugashi(code).strip().splitlines()[-1])
    for directory, result in zip(directories, results, strict=True):
        expected = FastEncoder(directory).encode_sentences(texts)
        assert result["class"] in ("TokenizersBackend", "PreTrainedTokenizerFast"), directory
        assert result["ids"] == expected and result["fast"] == expected, directory
        assert result["specials"] == [0, 1, 2, 3, 4]
        masked = result["masked"]
        assert masked[0] == 2 and masked[-1] == 3 and masked.count(4) == 1
    assert sum(map(len, results[0]["ids"])) > len(texts)


def test_fast_encoder_ids_equal_autotokenizer(raw):
    from test_tokenizer_encoder import EDGE_CASES

    _, encoder, tok = raw
    sentences = sample_sentences() + EDGE_CASES + TRICKY
    reference = tok(sentences, add_special_tokens=False)["input_ids"]
    ours = encoder.encode_sentences(sentences)
    assert [s for s, a, b in zip(sentences, reference, ours, strict=True) if a != b] == []
    assert encoder.special_ids == {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}
    assert encoder.vocab_size == len(tok) == 2500


def test_files_specials_pairs_and_byte_fallback(raw):
    directory, encoder, tok = raw
    assert sorted(p.name for p in directory.iterdir()) == [
        "manifest.json", "special_tokens_map.json", "spiece.model", "tokenizer.json", "tokenizer_config.json"]
    assert tok.convert_ids_to_tokens(list(range(len(SPECIALS)))) == SPECIALS
    # [CLS] A [SEP] B [SEP], B with token type 1; no token types unless asked (a ModernBERT takes none)
    pair = tok("今日は晴れ。", "明日は雨。")
    assert "token_type_ids" not in pair
    pair = tok("今日は晴れ。", "明日は雨。", return_token_type_ids=True)
    ids, types = pair["input_ids"], pair["token_type_ids"]
    assert ids[0] == 2 and ids[-1] == 3 and ids.count(3) == 2
    assert types == [0] * (ids.index(3) + 1) + [1] * (len(ids) - ids.index(3) - 1)
    # Characters the vocabulary lacks become their UTF-8 bytes, never [UNK], and decode back.
    texts = sample_sentences()[:200] + [t for t in TRICKY if "[" not in t]
    for text, token_ids in zip(texts, encoder.encode_sentences(texts), strict=True):
        assert 1 not in token_ids
        assert tok.decode(token_ids) == re.sub(" {2,}", " ", unicodedata.normalize("NFKC", text).strip(" "))
    rare = encoder.encode_sentences(["ꙮ"])[0]
    assert tok.convert_ids_to_tokens(rare) == ["<0xEA>", "<0x99>", "<0xAE>"]


@pytest.mark.parametrize("model", MODELS)
def test_trained_on_nfkc_text_and_the_same_ids_as_its_spiece_model(model):
    import sentencepiece as spm

    directory = raw_text_tokenizer(model)
    manifest = json.loads((directory / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["options"]["word_tokenizer"] == {"word_tokenizer_type": "none"}
    assert manifest["options"]["tokenizer_type"] == "sentencepiece"
    assert manifest["options"]["sentencepiece_settings"]["byte_fallback"] is True
    assert manifest["counts"]["byte_pieces"] == 256 and "words" not in manifest["counts"]
    config = json.loads((directory / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast" and "word_tokenizer_type" not in config
    sp = spm.SentencePieceProcessor(model_file=str(directory / "spiece.model"))
    pieces = [sp.IdToPiece(i) for i in range(sp.GetPieceSize())]
    assert [p for p in pieces if unicodedata.normalize("NFKC", p) != p] == []
    assert any(len(p.lstrip("\u2581")) > 2 for p in pieces)  # it learnt pieces longer than a MeCab word's piece
    # The converted tokenizer.json segments as SentencePiece itself does (on the sample: every sentence).
    sentences = sample_sentences()
    ours = FastEncoder(directory).encode_sentences(sentences)
    theirs = [sp.encode(unicodedata.normalize("NFKC", s)) for s in sentences]
    assert [s for s, a, b in zip(sentences, ours, theirs, strict=True) if a != b] == []


def test_option_errors():
    corpus = sample_corpus()
    with pytest.raises(UserError, match="--tokenizer_type wordpiece needs words"):
        train_tokenizer(corpus, scratch("bad") / "tok", word_tokenizer="none", tokenizer_type="wordpiece")
    with pytest.raises(UserError, match="--word_tokenizer 'juman'"):
        train_tokenizer(corpus, scratch("bad") / "tok", word_tokenizer="juman")


def test_rerun_is_skipped_and_the_caches_see_a_changed_tokenizer():
    out = scratch("raw-rerun") / "tok"
    train_tokenizer(sample_corpus(), out, word_tokenizer="none", vocab_size=2200, workers=1)
    before = (out / "manifest.json").stat().st_mtime_ns
    first = tokenizer_fingerprint(out)
    assert set(first) == {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "segmenter"}
    assert set(first["segmenter"]) == {"tokenizers"}
    train_tokenizer(sample_corpus(), out, word_tokenizer="none", vocab_size=2200, workers=1)
    assert (out / "manifest.json").stat().st_mtime_ns == before
    train_tokenizer(sample_corpus(), out, word_tokenizer="none", sentencepiece_model="bpe", vocab_size=2200, workers=1)
    assert (out / "manifest.json").stat().st_mtime_ns != before
    assert tokenizer_fingerprint(out)["tokenizer.json"] != first["tokenizer.json"]
    # a MeCab tokenizer in the same place is a different tokenizer too
    train_tokenizer(sample_corpus(), out, vocab_size=800, min_frequency=1, limit_alphabet=400, workers=1)
    assert set(tokenizer_fingerprint(out)) == {"vocab.txt", "tokenizer_config.json", "special_tokens_map.json",
                                               "segmenter"}


def test_word_starts_are_sentence_starts_and_spaces(raw):
    _, encoder, tok = raw
    sentences = sample_sentences()[:300] + TRICKY
    ids, starts = encoder.encode_with_word_starts(sentences)
    for token_ids, flags in zip(ids, starts, strict=True):
        pieces = tok.convert_ids_to_tokens(token_ids)
        assert flags == [k == 0 or p.startswith("\u2581") for k, p in enumerate(pieces)]
    # In Japanese that is about one "word" per sentence: what whole-word masking would mask.
    assert sum(map(sum, starts[:300])) < 1.2 * 300 < sum(map(len, ids[:300])) / 5


def _check_offsets(text, ids, spans, tok):
    assert ids.tolist() == tok(text, add_special_tokens=False)["input_ids"], text
    previous = (0, 0)
    previous_end = 0
    for token_id, (start, end) in zip(ids.tolist(), spans.tolist(), strict=True):
        piece = tok.convert_ids_to_tokens(token_id)
        assert 0 <= start <= end <= len(text)
        assert start >= previous_end or (start, end) == previous  # tokens of one character share its span
        previous, previous_end = (start, end), end
        if start == end:  # only a token that is just the space before the next text
            assert piece == "\u2581" and not text[start:start + 1].isspace()
            continue
        if piece.startswith("<0x"):  # a byte piece spans the character its bytes come from, a tab too
            continue
        assert text[start:end].strip() == text[start:end]  # a span never starts or ends in whitespace
        assert piece.lstrip("\u2581") in unicodedata.normalize("NFKC", text[start:end]), (text, piece)


def test_offsets_are_the_texts_own_characters(raw):
    _, encoder, tok = raw
    texts = TRICKY + sample_sentences()
    for text, (ids, spans) in zip(texts, encoder.encode_with_offsets(texts), strict=True):
        _check_offsets(text, ids, spans, tok)
        if text in TRICKY:
            continue
        covered = "".join(text[a:b] for a, b in dict.fromkeys(map(tuple, spans.tolist())))
        assert covered == "".join(text.split())  # the spans tile the text but its spaces
    (_, spans), = encoder.encode_with_offsets(["㈱は"])
    assert spans[:3].tolist() == [[0, 1]] * 3  # "(", "株", ")" all come from the one character
    (_, spans), = encoder.encode_with_offsets(["ｶﾞｷﾞ"])
    assert spans.tolist()[0][0] == 0 and spans.tolist()[-1][1] == 4 and spans.tolist()[0][1] == 2


def test_dataset_holds_the_encoders_ids_and_word_starts():
    directory = raw_text_tokenizer("unigram")
    out = build_dataset(sample_corpus(), directory, scratch("raw-ds") / "ds", sequence_length=64, form="full",
                        workers=2, progress=False)  # worker processes load the tokenizer.json themselves
    documents = sample_documents()
    sentences = [s for d in documents[len(documents) // 10:] for s in d]
    ids, starts, lengths = FastEncoder(directory).encode_flat(sentences)
    store = TokenStore(out, "train")
    assert np.array_equal(np.asarray(store.tokens), ids)
    assert np.array_equal(store.word_starts(np.arange(store.n_tokens)), starts)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["splits"]["train"]["unk_tokens"] == 0
    assert manifest["inputs"]["tokenizer"] == tokenizer_fingerprint(directory)


def test_whole_word_masking_is_refused_with_a_message(tmp_path, capsys):
    code = main(["run-pretraining", "--input_file", str(sample_corpus()), "--tokenizer_dir",
                 str(raw_text_tokenizer("unigram")), "--model_dir", str(tmp_path / "bert"), "--model_type", "bert-micro",
                 "--do_whole_word_mask", "--device", "cpu", "--no_progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--do_whole_word_mask" in err and "no word segmenter" in err and "--word_tokenizer mecab" in err
    assert not (tmp_path / "bert").exists()


def test_tokenizer_statistics_have_no_words_and_count_byte_pieces(tmp_path):
    from transformers import AutoTokenizer

    from ja_pretrain.evaluation.tokenizer_stats import tokenizer_statistics

    sentences = sample_sentences()[:50] + ["ꙮの文字と𠮷野家。"]
    text = tmp_path / "valid.txt"
    text.write_text("\n".join(sentences) + "\n", encoding="utf-8")
    stats = tokenizer_statistics(raw_text_tokenizer("unigram"), text)
    assert stats["words"] is None and stats["subwords_per_word"] is None and stats["unk_word_rate"] is None
    tokens = [t for s in sentences for t in AutoTokenizer.from_pretrained(raw_text_tokenizer("unigram")).tokenize(s)]
    assert stats["unk_rate"] == 0 and stats["tokens"] == len(tokens)
    # the sample is small: characters seen once in it are left to byte fallback
    assert stats["byte_rate"] > 0
    assert stats["byte_rate"] == pytest.approx(sum(t.startswith("<0x") for t in tokens) / len(tokens))
    assert stats["sentences"] == 51 and stats["characters_per_token"] == pytest.approx(
        sum(map(len, sentences)) / len(tokens))


def test_bert_pretrained_on_it_answers_jsquad_with_the_contexts_characters(tmp_path):
    """run-pretraining (corpus -> cached dataset -> final/) and finetune --task jsquad, whose
    windows and answers come from the encoder's offsets."""
    tokenizer = raw_text_tokenizer("unigram")
    assert main(["run-pretraining", "--input_file", str(sample_corpus()), "--tokenizer_dir", str(tokenizer),
                 "--model_dir", str(tmp_path / "bert"), "--model_type", "bert-micro", "--train_steps", "4",
                 "--save_steps", "4", "--batch_size", "4", "--device", "cpu", "--no_progress", "--peak_tflops", "1"]) == 0
    final = tmp_path / "bert" / "final"
    assert (final / "tokenizer.json").is_file()
    assert "words: none (SentencePiece on the raw NFKC text" in (final / "README.md").read_text(encoding="utf-8")
    answer = CONTEXT.index("ＡＢＣ")
    squad = {"version": "v1.3", "data": [{"title": "会社", "paragraphs": [{"context": CONTEXT, "qas": [
        {"id": f"q{i}", "question": "東京に本社がある会社は？", "is_impossible": False,
         "answers": [{"text": "ＡＢＣ株式会社", "answer_start": answer}]} for i in range(12)]}]}]}
    (tmp_path / "jsquad").mkdir()
    for split in ("train", "valid"):
        (tmp_path / "jsquad" / f"{split}-v1.3.json").write_text(json.dumps(squad, ensure_ascii=False), encoding="utf-8")
    assert main(["finetune", str(final), "--task", "jsquad", "--data", str(tmp_path), "--out", str(tmp_path / "qa"),
                 "--learning_rate", "1e-3", "--epochs", "1", "--no_progress", "--device", "cpu"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "qa" / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 12 and all(r["prediction"] in CONTEXT for r in rows)
    scores = json.loads((tmp_path / "qa" / "scores.json").read_text(encoding="utf-8"))
    assert 0 <= scores["metrics"]["f1"] <= 100


def test_report_table_shows_no_words_and_the_byte_share(tmp_path):
    from ja_pretrain.evaluation.report import tokenizer_section
    from ja_pretrain.evaluation.rundir import scan_run_dir

    shutil.copytree(raw_text_tokenizer("unigram"), tmp_path / "tokenizer")
    (tmp_path / "tokenizer" / "spiece.model").unlink()  # found by its tokenizer.json alone
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "valid.txt").write_text("\n".join(sample_sentences()[:20] + ["ꙮの文字。"]) + "\n",
                                                   encoding="utf-8")
    (tmp_path / "corpus" / "manifest.json").write_text(json.dumps({"stage": "corpus"}), encoding="utf-8")
    run = scan_run_dir(tmp_path)
    assert run.tokenizers == [tmp_path / "tokenizer"]
    row = next(line for line in tokenizer_section(run, 100) if line.startswith("| `tokenizer`"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] in ("TokenizersBackend", "PreTrainedTokenizerFast") and cells[4] == "n/a"
    assert cells[6] == "0.000%" and float(cells[7].rstrip("%")) > 0 and cells[8] == cells[9] == "n/a"
