"""Character offsets of the fast encoder's tokens in the original text: ids stay AutoTokenizer's,
and each token's span, normalized, holds the token's text, through NFKC, MeCab's whitespace and
WordPiece pieces."""

from __future__ import annotations

import unicodedata

import pytest

from ja_pretrain.tokenization.encoder import FastEncoder
from ja_pretrain.tokenization.offsets import nfkc_alignment, word_starts

from tokdata_support import sample_sentences, trained_tokenizer

TRICKY = [
    "㈱ＡＢＣは１２３円の利益を上げた。",      # NFKC: one character to three, full-width to ASCII
    "ｶﾞｷﾞｸﾞとﾊﾟｿｺﾝは半角カナ。",            # half-width kana with voiced marks: two characters to one
    "絵文字😀と𠮷野家の丼。",                   # outside the BMP (surrogate pairs in UTF-16)
    "   先頭の空白と　全角空白、\tタブ\n改行。",   # leading, repeated, full-width and control whitespace
    "ｘｙｚｚｙ未知語ꙮの文字。",                 # a character the vocabulary lacks: [UNK]
    "https://example.com/" + "abcdefghij" * 12 + "を見た。",  # a word past WordPiece's 100 characters
    "[MASK]と[SEP]を含む文。",                  # special-token strings in the text
    "ア\u3099と\u1100\u1161\u11a8の合成。",      # combining marks and Hangul jamo that NFKC composes
]


@pytest.fixture(scope="module")
def tools():
    from transformers import AutoTokenizer

    directory = trained_tokenizer()
    return FastEncoder(directory), AutoTokenizer.from_pretrained(directory)


def _check(text, ids, offsets, tok):
    assert ids.tolist() == tok(text, add_special_tokens=False)["input_ids"], text
    unk = tok.unk_token_id
    previous = (0, 0)
    for token_id, (start, end) in zip(ids.tolist(), offsets.tolist(), strict=True):
        assert 0 <= start < end <= len(text)
        assert start >= previous[1] or (start, end) == previous  # tokens of one character share its span
        previous = (start, end)
        piece = tok.convert_ids_to_tokens(token_id)
        piece = piece[2:] if piece.startswith("##") else piece
        normalized = unicodedata.normalize("NFKC", text[start:end])
        if token_id != unk:
            assert piece in normalized, (text, piece, text[start:end])
        assert text[start:end].strip() == text[start:end]  # a span never starts or ends in whitespace


def test_tricky_texts(tools):
    encoder, tok = tools
    for text, (ids, offsets) in zip(TRICKY, encoder.encode_with_offsets(TRICKY), strict=True):
        _check(text, ids, offsets, tok)
    (ids, offsets), = encoder.encode_with_offsets(["㈱は"])
    assert offsets[:3].tolist() == [[0, 1]] * 3  # "(", "株", ")" all come from the one character
    (ids, offsets), = encoder.encode_with_offsets(["ｶﾞｷﾞ"])
    assert offsets.tolist()[0][0] == 0 and offsets.tolist()[-1][1] == 4  # ｶﾞ is one run of two characters
    (ids, offsets), = encoder.encode_with_offsets(["😀です"])
    assert ids[0] == tok.unk_token_id and offsets[0].tolist() == [0, 1]  # one code point, two UTF-16 units


def test_bundled_sample_round_trip(tools):
    """The text under a whole-word token's span encodes back to that token. Pieces of a longer
    word and [UNK] are left out: on its own MeCab and WordPiece may cut such a piece otherwise
    (a "##" piece is no word start), which is the documented kind of miss."""
    encoder, tok = tools
    sentences = sample_sentences()
    checked = failures = 0
    for text, (ids, offsets) in zip(sentences, encoder.encode_with_offsets(sentences), strict=True):
        _check(text, ids, offsets, tok)
        starts = encoder.encode_with_word_starts([text])[1][0] + [True]
        for k, (token_id, (start, end)) in enumerate(zip(ids.tolist(), offsets.tolist(), strict=True)):
            if not (starts[k] and starts[k + 1]) or token_id == tok.unk_token_id:
                continue
            checked += 1
            failures += encoder.encode_sentences([text[start:end]])[0] != [token_id]
    assert checked > 10_000 and failures == 0


def test_nfkc_alignment_covers_every_normalized_character():
    for text in TRICKY:
        normalized, first, last = nfkc_alignment(text)
        assert len(first) == len(last) == len(normalized)
        assert (first[1:] >= first[:-1]).all() and (last > first).all() and last.max() <= len(text)
        for i, ch in enumerate(normalized):
            assert ch in unicodedata.normalize("NFKC", text[first[i]:last[i]])


def test_word_starts_fall_back_to_search_when_words_are_not_the_text():
    normalized = "今日は 晴れ"
    assert word_starts(normalized, ["今日", "は", "晴れ"]).tolist() == [0, 2, 4]
    assert word_starts(normalized, ["\x00今日", "晴れ"]).tolist() == [0, 4]  # a special-token word


def test_a_word_past_wordpieces_limit_is_one_unk_spanning_it(tmp_path):
    """MeCab never makes a word of over 100 characters here, Sudachi does: such a word is one
    [UNK], as transformers' WordpieceTokenizer makes it, spanning the whole word."""
    import json
    import shutil

    from transformers import AutoTokenizer

    pytest.importorskip("sudachipy")
    directory = tmp_path / "sudachi"
    shutil.copytree(trained_tokenizer(), directory)
    config = json.loads((directory / "tokenizer_config.json").read_text(encoding="utf-8"))
    config.pop("mecab_kwargs", None)
    config.update(word_tokenizer_type="sudachi", sudachi_kwargs={"sudachi_split_mode": "C", "sudachi_dict_type": "core"})
    (directory / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    text = "　ｘ" + "ア" * 120 + "です。"
    (ids, offsets), = FastEncoder(directory).encode_with_offsets([text])
    tok = AutoTokenizer.from_pretrained(directory)
    _check(text, ids, offsets, tok)
    long = [(token, a, b) for token, (a, b) in zip(ids.tolist(), offsets.tolist(), strict=True) if b - a > 100]
    assert long == [(tok.unk_token_id, 2, 122)]  # the katakana run: one [UNK] over its 120 characters
