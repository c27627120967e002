"""Quality filters and near-duplicate signatures (corpus/quality.py, corpus/neardup.py): what each
measure reads off a document, and that the fast forms measure what their patterns say."""

from __future__ import annotations

import numpy as np
import pytest

from ja_pretrain.corpus import neardup, quality
from ja_pretrain.corpus.quality import Documents, failed_filter, failed_filters, parse_filters
from ja_pretrain.resources import sample_corpus_path

SAMPLE = [d.split("\n") for d in sample_corpus_path().read_text(encoding="utf-8").split("\n\n") if d.strip()]
PROSE = "今日は朝から雨が降っていたので、私は家で本を読みながら静かに過ごしていました。"


def test_class_counts_are_the_patterns_counts():
    # every block the table covers, astral characters (emoji, a CJK Extension B kanji), odd spaces
    mixed = "".join(chr(c) for c in range(0x20, 0x3000, 7)) + "𠮷野家で😀を食べた\u3000\u2003ｶﾀｶﾅ①㈱～"
    documents = [*SAMPLE[:20], [mixed, "〆切は々ヵヶ月後", "https://例え.jp/ページ"], ["短い"]]
    batch = Documents(documents)
    for k, lines in enumerate(documents):
        text = "\n".join(lines)
        assert batch.visible[k] == len(quality._SPACE.sub("", text))
        for kind, pattern in ((quality.KANA_KANJI, quality._KANA_KANJI), (quality.HIRAGANA, quality._HIRAGANA),
                              (quality.SYMBOL, quality._SYMBOL)):
            assert batch.class_counts[k, kind] == len(pattern.findall(text)), pattern.pattern


def test_a_url_ends_at_its_line():
    # "".join(lines) once let a URL at the end of a line run on through the next line's text
    lines = ["詳しくは https://example.jp/news", PROSE * 6]
    batch = Documents([lines])
    assert quality.urls(batch)[0] == pytest.approx(len("https://example.jp/news") / batch.visible[0])
    assert failed_filter(lines, parse_filters(["urls"])) is None


def test_repeated_ngrams_share():
    shares = quality.repeated_ngrams(Documents([["あいうえおかきくけこ" * 3], [PROSE], ["短い"], [PROSE, PROSE]]))
    assert shares.tolist() == pytest.approx([1 - 10 / 21, 0.0, 0.0, 1 - (len(PROSE) + 1) / (2 * len(PROSE) - 8)])


def test_a_batch_decides_each_document_as_alone():
    documents = [*SAMPLE[:30], ["短い文です。"], ["ここをクリックしてください。"] * 6,
                 ["★☆★☆★☆★☆ 本日限りのセールを開催しています ★☆★☆★☆★☆ 今すぐお店へ"] * 2]
    filters = parse_filters(["all"])
    together = failed_filters(documents, filters)
    assert together == [failed_filter(lines, filters) for lines in documents]
    assert together[:30] == [None] * 30
    assert [f[0] for f in together[30:]] == ["length", "repeated_lines", "symbols"]


@pytest.mark.parametrize("name, lines", [
    ("length", ["短い文です。"]),
    ("hiragana", ["東京都千代田区丸の内一丁目", "株式会社東京商事本社営業部第一課長", "電話番号案内窓口受付時間平日九時",
                  "最寄駅東京駅丸の内北口徒歩五分"]),
    ("urls", ["https://example.com/a/b/c/d/e/f/g/h", "mail: info@example.co.jp", "リンク集です。"]),
    ("repeated_ngrams", ["激安セール開催中!今すぐチェック!激安セール開催中!今すぐチェック!激安セール開催中!今すぐ",
                         "チェック!激安セール開催中!今すぐチェック!激安セール開催中!"]),
    ("ellipsis_lines", ["新着記事一覧", "今日は朝から雨が降っていたので、私は家で…", "駅前の新しいお店に行ってみたところ、とても…",
                        "週末の予定をまだ決めていないのですが、たぶん…"]),
])
def test_each_filter_removes_its_kind_and_keeps_prose(name, lines):
    failed = failed_filter(lines, parse_filters([name]))
    assert failed is not None and failed[0] == name, failed
    assert failed_filter([PROSE, PROSE.replace("本", "新聞")], parse_filters(["all"])) is None


def test_signature_estimates_jaccard():
    a = "\n".join(sum(SAMPLE[:3], []))
    b = a.replace("。", "!", 4) + "\nこの記事へのコメントはまだありません。"

    def shingles(text: str) -> set[str]:
        return {text[i : i + neardup.SHINGLE] for i in range(len(text) - neardup.SHINGLE + 1)}

    jaccard = len(shingles(a) & shingles(b)) / len(shingles(a) | shingles(b))
    agree = float(np.mean(neardup.minhash(a) == neardup.minhash(b)))
    assert 0.5 < jaccard < 0.97 and abs(agree - jaccard) < 0.12, (agree, jaccard)
    assert (neardup.minhash(a) == neardup.minhash(a)).all()
    assert neardup.minhash("短い") is None


def test_short_text_fills_every_bin_from_its_own_shingles():
    text = "吾輩は猫である。名前はまだ無い。"  # 12 shingles for 128 bins: most bins empty, then densified
    signature = neardup.minhash(text)
    hashes = neardup.shingle_hashes(text)
    values = set(((hashes << np.uint64(7)) >> np.uint64(32)).tolist())
    assert len(signature) == neardup.NUM_PERM and set(signature.tolist()) <= values
    with pytest.raises(ValueError, match="power of two"):
        neardup.minhash(text, num_perm=100)


def test_a_batch_gives_each_text_its_own_signature():
    texts = ["\n".join(d) for d in SAMPLE[:12]] + ["", "短い", "ちょうど五", PROSE]
    values, has = neardup.signatures(texts)
    for text, row, ok in zip(texts, values, has, strict=True):
        alone = neardup.minhash(text)
        assert (alone is None) == (not ok)
        assert alone is None or (row == alone).all()
    assert has.tolist()[-4:] == [False, False, True, True]


def test_near_duplicate_index_matches_a_model_of_its_buckets():
    """Few buckets, so that keys share buckets and the oldest fall out: the vectorised table must
    keep exactly what 4-slot buckets (newest first) keep, and count what they forget."""
    index = neardup.NearDuplicateIndex(memory_mb=16 * 32 / (1 << 20))  # 16 buckets of 4
    buckets: dict[int, list[int]] = {}
    evicted = 0
    rng = np.random.default_rng(0)
    for _ in range(300):
        keys = rng.integers(0, 2**64, size=3, dtype=np.uint64, endpoint=False)
        if rng.random() < 0.3:  # a document sharing a band with one seen before
            keys[1] = rng.choice([k for b in buckets.values() for k in b] or [7])
        expected = any(int(k) in buckets.get(int(k) % 16, []) for k in keys)
        assert index.is_near_duplicate(keys.astype("<u8").tobytes()) == expected
        if not expected:
            for k in map(int, keys):
                slots = buckets.setdefault(k % 16, [])
                slots.insert(0, k)
                if len(slots) > 4:
                    slots.pop()
                    evicted += 1
    assert index.evictions == evicted > 0

