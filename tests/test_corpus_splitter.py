"""Sentence splitting, line normalisation, wikitext conversion and de-duplication."""

import unicodedata

import pytest

from ja_pretrain.corpus.dedup import SentenceDeduplicator
from ja_pretrain.corpus.normalize import normalize_line
from ja_pretrain.corpus.process import CleanOptions, process_document, sentence_digest
from ja_pretrain.corpus.sentences import split_sentences
from ja_pretrain.corpus.wikitext import wikitext_to_text


def split(text: str, limit: int = 500) -> list[str]:
    return split_sentences(normalize_line(text), limit)


@pytest.mark.parametrize(
    "text, expected",
    [
        # basic marks, full- and half-width, runs of marks
        ("今日は晴れ。明日は雨！本当？はい。", ["今日は晴れ。", "明日は雨!", "本当?", "はい。"]),
        ("嘘でしょ！？信じられない。", ["嘘でしょ!?", "信じられない。"]),
        # quotes: no split inside, closing bracket stays with its sentence
        ("彼は「行くぞ。待ってろ。」と言った。次の日、出発した。", ["彼は「行くぞ。待ってろ。」と言った。", "次の日、出発した。"]),
        ("『本当に。』そう思った。", ["『本当に。』そう思った。"]),
        # dialogue run together: one sentence per quote; a quote that goes on (と言った) stays whole
        ("「はい。」「いいえ。」", ["「はい。」", "「いいえ。」"]),
        ("「行くよ！」『待って。』そう言って走った。", ["「行くよ!」", "『待って。』そう言って走った。"]),
        ("「はい。」と答えた。「では。」", ["「はい。」と答えた。", "「では。」"]),
        ("本当だ。」と彼は言った。", ["本当だ。」", "と彼は言った。"]),
        # parentheses (full-width become half-width under NFKC)
        ("東京（旧称は江戸。徳川家康が開いた。）は首都である。人口は多い。", ["東京(旧称は江戸。徳川家康が開いた。)は首都である。", "人口は多い。"]),
        ("“これは。引用です。”と書いた。", ["“これは。引用です。”と書いた。"]),
        # decimals, ellipses, enumerations
        ("円周率は約3.14である。重さは2.5kgだ。", ["円周率は約3.14である。", "重さは2.5kgだ。"]),
        ("そうか…。でも…まあいいか。", ["そうか...。", "でも...まあいいか。"]),
        ("理由は次の通り。1. 価格が安い。2. 品質が良い。", ["理由は次の通り。", "1. 価格が安い。", "2. 品質が良い。"]),
        ("(1)東京、(2)大阪、(3)名古屋の三都市。以上。", ["(1)東京、(2)大阪、(3)名古屋の三都市。", "以上。"]),
        # half-width ! ? inside Latin text do not end sentences
        ("Yahoo!ニュースで見た。What? と聞かれた。", ["Yahoo!ニュースで見た。", "What? と聞かれた。"]),
        ("詳細はhttps://example.com/?q=1を参照。次へ。", ["詳細はhttps://example.com/?q=1を参照。", "次へ。"]),
        # a single full stop between Japanese characters (academic style)
        ("研究を行った．結果は良好であった．", ["研究を行った.", "結果は良好であった."]),
        # a name ending in 。
        ("モーニング娘。の新曲が出た。よかった。", ["モーニング娘。の新曲が出た。", "よかった。"]),
    ],
)
def test_split_sentences(text, expected):
    assert split(text) == expected


def test_unclosed_bracket_does_not_swallow_the_line():
    assert split("括弧が閉じない（例えば。これは文。最後の文。") == ["括弧が閉じない(例えば。", "これは文。", "最後の文。"]
    # the stray "(" is plain text, but the matched quote after it still holds together
    assert split("起草(首相によるもので、彼は「退位ではないか!するつもりはない!」と激高した。次の文。") == [
        "起草(首相によるもので、彼は「退位ではないか!するつもりはない!」と激高した。",
        "次の文。",
    ]
    # a German „…“ quote: “ closes nothing here
    assert split("写生画(„Skizzenbuch“)に示されている。これは明らかだ。") == ["写生画(„Skizzenbuch“)に示されている。", "これは明らかだ。"]


def test_long_quote_is_split_past_the_limit():
    quote = "「" + "".join(f"これは{i}番目の文です。" for i in range(20)) + "」と言った。"
    assert split(quote, limit=10_000) == [normalize_line(quote)]
    pieces = split(quote, limit=50)
    assert len(pieces) == 21 and pieces[0] == "「これは0番目の文です。" and pieces[-1] == "と言った。"
    assert "".join(pieces) == normalize_line(quote)


def test_normalize_line_nfkc_controls_whitespace_residue():
    assert normalize_line("ＡＢＣ　ｶﾀｶﾅ\u200b\x07  テスト\t終わり") == "ABC カタカナ テスト 終わり"
    assert normalize_line("東京は首都である[1][注 2]。人口は多い[要出典]。") == "東京は首都である。人口は多い。"
    assert normalize_line("事実である[いつ?]が、[要検証 – ノート]異論もある") == "事実であるが、異論もある"
    assert normalize_line("東京（とうきょう、{{lang-en|Tokyo}}）は'''首都'''である") == "東京(とうきょう)は首都である"
    assert normalize_line("a&amp;b&nbsp;c<ref>x</ref>d<br />e") == "a&b cxd e"
    assert normalize_line("[東京]と[要出典]と[5]と[注釈 3]") == "[東京]ととと"
    assert normalize_line("| 国章リンク = (国章)") == normalize_line("{| class=wikitable") == ""


def test_invisible_characters_are_removed():
    # every control and format character of the BMP except \t and \n
    chars = [chr(c) for c in range(0x10000) if unicodedata.category(chr(c)) in ("Cc", "Cf") and chr(c) not in "\t\n"]
    kept = [c for c in chars if c in normalize_line("あ" + c + "い").replace("あ", "").replace("い", "")]
    assert kept == []


def test_wikitext_to_text_keeps_prose_only():
    wikitext = (
        "{{Infobox 人物|名前=山田}}\n"
        "'''山田太郎'''（やまだ たろう、{{lang-en|Taro Yamada}}）は[[日本]]の[[作家|小説家]]である<ref>出典</ref>。\n"
        "\n== 経歴 ==\n"
        "[[ファイル:Yamada.jpg|thumb|山田の写真]]\n"
        "[[東京都]]に生まれる。[http://example.com 公式サイト]で連載した。\n"
        "{| class=\"wikitable\"\n|-\n| 表の中身 || 数字\n|}\n"
        "{{表の始まり}}\n| 壊れた表の行の中身 || 1\n|2009||rowspan=3|東京||32\n"
        "* [[一覧の項目]]\n"
        "<!-- comment -->\n"
        "[[Category:日本の小説家]]\n[[en:Taro Yamada]]\n"
    )
    lines = [line.strip() for line in wikitext_to_text(wikitext).split("\n") if line.strip()]
    assert lines == ["山田太郎（やまだ たろう、）は日本の小説家である。", "東京都に生まれる。公式サイトで連載した。"]
    doc = process_document(("wikitext", wikitext), CleanOptions(min_chars=5))
    assert doc.sentences == ["山田太郎(やまだ たろう)は日本の小説家である。", "東京都に生まれる。", "公式サイトで連載した。"]


def test_length_filter_counts():
    doc = process_document(("text", "短い。\nこれは十分に長い文である。\n" + "長" * 50 + "。"), CleanOptions(min_chars=5, max_chars=40))
    assert doc.sentences == ["これは十分に長い文である。"]
    assert doc.dropped == (1, 1, 0)
    doc = process_document(("text", "次の式が成り立つとき、\nこれは十分に長い文である。\n、と書ける式である。"), CleanOptions(min_chars=5))
    assert doc.sentences == ["これは十分に長い文である。"] and doc.dropped == (0, 0, 2)
    assert len(doc.digests) == 8 * len(doc.sentences)


def test_deduplicator_exact_and_bounded():
    d = SentenceDeduplicator(memory_mb=1)
    digests = [sentence_digest(f"文{i}") for i in range(1000)]
    assert all(d.add(x) for x in digests)
    assert not any(d.add(x) for x in digests)
    assert d.evictions == 0 and len(d.table) == 1 << 20 and d.capacity == 1 << 17
    tiny = SentenceDeduplicator(memory_mb=64 / (1 << 20))  # 2 buckets x 4 slots
    assert all(tiny.add(x) for x in digests[:100])
    assert tiny.evictions == 100 - tiny.capacity  # memory fixed; old entries forgotten and counted
    assert not tiny.add(digests[99])  # the newest are still remembered
