"""Quality filters: ours (ja_pretrain.corpus.quality) against HojiChar's filters of the same kind.

    python benchmarks/quality_bench.py [--repeats 3] [--junk 550] [--per-file N]

Documents: every document of ../shared/data/corpus-ja (Aozora works, Wikipedia articles, KWDLC web
leads), plus --junk documents made from their sentences in the shapes web junk takes (link lists,
repeated navigation lines, keyword spam, symbol decoration, kanji-only lists, Latin-letter text,
one short line; and the four shapes HojiChar's own filters name: BBS posts, listings cut with "...",
menus of short lines, a character repeated), so that a removal can be right as well as wrong. Each document's lines are
normalised as the corpus stage does (normalize_line); both libraries get the same lines, joined
with "\\n".

Pairs (ours at its default threshold, HojiChar's filter at its default unless the pair needs ours):
  length >= 50             DocumentLengthFilter(min_doc_len=50)
  japanese >= 0.5          AcceptJapanese() (a hiragana or katakana among the first 50 characters)
  symbols <= 0.1           DiscardTooManySpecialToken(0.4) (punctuation, spaces, emoji... share)
  repeated_ngrams <= 0.3   CharRepetitionRatioFilter(0.33, 5) (share of the sqrt(n) most frequent 5-grams)
Ours without a HojiChar counterpart: hiragana, urls, repeated_lines. HojiChar's without ours:
DiscardRareKuten, DiscardTooShortLines, SingleCharacterRepetitionFilter, DiscardTooManyEndingEllipsis,
DiscardBBSComments, DiscardAds (their removals are reported, and how many of them ours removes too).

For each filter: documents removed (clean / made junk), and for a pair the documents on which the two
agree; the CPU seconds of one pass over all documents. The chains (ours: --quality all, first failing
filter; HojiChar: Compose of the four paired filters) are timed alternately over --repeats, median CPU
MB/s of text. Ours measures BATCH_DOCUMENTS documents at a time, as the corpus stage's workers do;
HojiChar one document at a time, as its filters are written. Prints tables, writes
benchmarks/out/quality_bench.json and a few documents on which each pair disagrees to
benchmarks/out/quality_bench_disagreements.txt (not committed: shared text).
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data" / "corpus-ja"
OUT = ROOT / "benchmarks" / "out" / "quality_bench.json"
DISAGREEMENTS = ROOT / "benchmarks" / "out" / "quality_bench_disagreements.txt"
FILES = ("aozora_pd_sample", "wikipedia_ja_sample", "web_kwdlc_leads")
# The first seven are the shapes our filters were written for; the last four those HojiChar's are
# documented for (BBS threads, listings cut with "...", menus of short lines, one character repeated).
JUNK_KINDS = ("link_list", "navigation", "keyword_spam", "decoration", "kanji_list", "latin", "short",
              "bbs", "ellipsis", "menu", "char_run")


def load(per_file: int | None) -> list[tuple[str, list[str]]]:
    from ja_pretrain.corpus.normalize import normalize_line

    docs = []
    for name in FILES:
        with gzip.open(SHARED / f"{name}.txt.gz", "rt", encoding="utf-8") as f:
            for block in f.read().split("\n\n")[:per_file]:
                lines = [line for line in map(normalize_line, block.split("\n")) if line]
                if lines:
                    docs.append((name, lines))
    return docs


def make_junk(docs: list[tuple[str, list[str]]], n: int, seed: int = 0) -> list[tuple[str, list[str]]]:
    """Junk documents built from real sentences, `n` in all, the kinds in turn."""
    rng = random.Random(seed)
    sentences = [s for _, lines in docs for s in lines if 15 <= len(s) <= 120]
    latin = [w for s in sentences[:200_000] for w in re.findall(r"[A-Za-z]{3,}", s)]
    out = []
    for k in range(n):
        kind = JUNK_KINDS[k % len(JUNK_KINDS)]
        pick = [rng.choice(sentences) for _ in range(8)]
        if kind == "link_list":
            lines = [f"・{s[:12]} https://www.example.jp/{rng.randrange(10**6)}/index.html" for s in pick]
        elif kind == "navigation":
            nav = "ホーム | 会社概要 | 製品情報 | お問い合わせ | サイトマップ"
            lines = [nav, pick[0], nav, nav, pick[1], nav, nav, nav]
        elif kind == "keyword_spam":
            words = [s[i : i + 4] for s in pick[:3] for i in (0, 6)]
            lines = [" ".join(rng.choice(words) for _ in range(30)) for _ in range(3)]
        elif kind == "decoration":
            lines = ["★☆★☆★☆★☆★☆★☆★☆★☆", f"◆{pick[0][:20]}◆", "■□■□■□■□■□■□", f"【{pick[1][:20]}】", "♪♪♪♪♪♪♪♪"]
        elif kind == "kanji_list":
            lines = [re.sub(r"[\u3040-\u30ff、。]", "", s) for s in pick]
        elif kind == "latin":
            lines = [" ".join(rng.choice(latin) for _ in range(12)) + "." for _ in range(4)]
        elif kind == "short":
            lines = [pick[0][:30]]
        elif kind == "bbs":
            lines = [f"{i + 1}: 名無しさん 2019/08/{rng.randrange(1, 29):02d}(日) {rng.randrange(24):02d}:"
                     f"{rng.randrange(60):02d}:{rng.randrange(60):02d}.{rng.randrange(100):02d} "
                     f"ID:{rng.randrange(16**8):08x} {s}" for i, s in enumerate(pick)]
        elif kind == "ellipsis":
            lines = [s[:25] + "..." for s in pick]
        elif kind == "menu":
            lines = ["トップ", "ニュース", "スポーツ", "エンタメ", "ランキング", "天気", "地図", "ログイン", pick[0], "利用規約",
                     "ヘルプ", "会員登録"]
        else:
            lines = [pick[0], pick[1][:10] + "ー" * 250, pick[2]]
        out.append((f"junk_{kind}", [line for line in lines if line]))
    return out


def ours_filters() -> dict:
    """Each of our filters alone, on batches of BATCH_DOCUMENTS documents as the stage's workers
    measure them."""
    from ja_pretrain.corpus.build import BATCH_DOCUMENTS
    from ja_pretrain.corpus.quality import FILTERS, Documents

    def decide(name: str):
        measure, threshold, at_least = FILTERS[name]

        def removes(documents: list[list[str]]) -> list[bool]:
            removed = []
            for start in range(0, len(documents), BATCH_DOCUMENTS):
                values = measure(Documents(documents[start : start + BATCH_DOCUMENTS]))
                removed += (values < threshold if at_least else values > threshold).tolist()
            return removed

        return removes

    return {name: decide(name) for name in FILTERS}


def hojichar_filters() -> dict:
    from hojichar import Document
    from hojichar.filters import document_filters as f

    made = {
        "DocumentLengthFilter": f.DocumentLengthFilter(min_doc_len=50),
        "AcceptJapanese": f.AcceptJapanese(),
        "DiscardTooManySpecialToken": f.DiscardTooManySpecialToken(),
        "CharRepetitionRatioFilter": f.CharRepetitionRatioFilter(),
        "DiscardRareKuten": f.DiscardRareKuten(),
        "DiscardTooShortLines": f.DiscardTooShortLines(),
        "SingleCharacterRepetitionFilter": f.SingleCharacterRepetitionFilter(),
        "DiscardTooManyEndingEllipsis": f.DiscardTooManyEndingEllipsis(),
        "DiscardBBSComments": f.DiscardBBSComments(),
        "DiscardAds": f.DiscardAds(),
    }

    def decide(flt):
        return lambda documents: [bool(flt.apply(Document("\n".join(lines))).is_rejected) for lines in documents]

    return {name: decide(flt) for name, flt in made.items()}


PAIRS = (("length", "DocumentLengthFilter"), ("japanese", "AcceptJapanese"),
         ("symbols", "DiscardTooManySpecialToken"), ("repeated_ngrams", "CharRepetitionRatioFilter"))


def chains():
    from hojichar import Compose, Document
    from hojichar.filters import document_filters as f

    from ja_pretrain.corpus.build import BATCH_DOCUMENTS
    from ja_pretrain.corpus.quality import failed_filters, parse_filters

    ours = parse_filters(["all"])
    theirs = Compose([f.DocumentLengthFilter(min_doc_len=50), f.AcceptJapanese(), f.DiscardTooManySpecialToken(),
                      f.CharRepetitionRatioFilter()])

    def ours_chain(documents: list[list[str]]) -> list[bool]:
        return [failed is not None for start in range(0, len(documents), BATCH_DOCUMENTS)
                for failed in failed_filters(documents[start : start + BATCH_DOCUMENTS], ours)]

    return {"ours (--quality all)": ours_chain,
            "HojiChar (4 paired filters)": lambda documents: [bool(theirs.apply(Document("\n".join(lines))).is_rejected)
                                                              for lines in documents]}


def run_pass(decide, docs) -> tuple[list[bool], float]:
    started = time.process_time()
    removed = decide([lines for _, lines in docs])
    return removed, time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--junk", type=int, default=550, help="junk documents, the kinds in turn")
    parser.add_argument("--per-file", type=int, default=None, help="the first N documents of each file (default all)")
    args = parser.parse_args()
    clean = load(args.per_file)
    junk = make_junk(clean, args.junk)
    docs = clean + junk
    is_junk = [source.startswith("junk_") for source, _ in docs]
    megabytes = sum(len("\n".join(lines).encode()) for _, lines in docs) / 1e6

    decisions, seconds = {}, {}
    for name, decide in {**ours_filters(), **hojichar_filters()}.items():
        decisions[name], seconds[name] = run_pass(decide, docs)

    chain_arms = chains()
    chain_seconds = {name: [] for name in chain_arms}
    chain_removed = {}
    for _ in range(args.repeats):
        for name, decide in chain_arms.items():
            chain_removed[name], took = run_pass(decide, docs)
            chain_seconds[name].append(took)

    def counts(removed: list[bool]) -> dict:
        return {"clean": sum(r and not j for r, j in zip(removed, is_junk, strict=True)),
                "junk": sum(r and j for r, j in zip(removed, is_junk, strict=True))}

    def junk_recall(removed: list[bool]) -> dict:
        by_kind = {}
        for kind in JUNK_KINDS:
            rows = [r for r, (source, _) in zip(removed, docs, strict=True) if source == f"junk_{kind}"]
            by_kind[kind] = sum(rows) / max(1, len(rows))
        return by_kind

    def agreement(a: list[bool], b: list[bool]) -> dict:
        both = sum(x and y for x, y in zip(a, b, strict=True))
        return {"both": both, "only_first": sum(a) - both, "only_second": sum(b) - both,
                "same_decision": sum(x == y for x, y in zip(a, b, strict=True)) / len(a)}

    result = {"documents": len(docs), "clean_documents": len(clean), "junk_documents": len(junk), "megabytes": megabytes,
              "filters": {n: {"removed": counts(decisions[n]), "junk_recall": junk_recall(decisions[n]),
                              "cpu_seconds": seconds[n], "mb_per_cpu_s": megabytes / seconds[n]} for n in decisions},
              "pairs": {f"{a} ~ {b}": agreement(decisions[a], decisions[b]) for a, b in PAIRS},
              "hojichar_only_also_removed_by_ours_chain": {},
              "chains": {}}
    ours_any = chain_removed["ours (--quality all)"]
    for name in hojichar_filters():
        if name not in {b for _, b in PAIRS}:
            result["hojichar_only_also_removed_by_ours_chain"][name] = agreement(decisions[name], ours_any)
    for name in chain_arms:
        median = statistics.median(chain_seconds[name])
        result["chains"][name] = {"removed": counts(chain_removed[name]), "junk_recall": junk_recall(chain_removed[name]),
                                  "cpu_seconds": chain_seconds[name], "mb_per_cpu_s": megabytes / median}
    names = list(chain_arms)
    result["chain_agreement"] = agreement(chain_removed[names[0]], chain_removed[names[1]])

    print(f"{len(docs):,} documents ({len(clean):,} of corpus-ja, {len(junk)} junk made from them), "
          f"{megabytes:.1f} MB; CPU time, 1 process")
    print(f"{'filter':<34}{'removed clean':>14}{'removed junk':>13}{'MB/s':>9}")
    for name, r in result["filters"].items():
        print(f"{name:<34}{r['removed']['clean']:>14,}{r['removed']['junk']:>13,}{r['mb_per_cpu_s']:>9.1f}")
    print(f"{'pair (ours ~ HojiChar)':<52}{'both':>6}{'ours only':>10}{'theirs only':>12}{'same':>8}")
    for pair, a in result["pairs"].items():
        print(f"{pair:<52}{a['both']:>6,}{a['only_first']:>10,}{a['only_second']:>12,}{a['same_decision']:>8.4f}")
    print(f"{'HojiChar-only filter vs our chain':<52}{'both':>6}{'ours no':>10}")
    for name, a in result["hojichar_only_also_removed_by_ours_chain"].items():
        print(f"{name:<52}{a['both']:>6,}{a['only_first']:>10,}")
    print(f"chains, median of {args.repeats} alternated passes:")
    print(f"{'chain':<30}{'removed clean':>14}{'removed junk':>13}{'MB/s':>9}")
    for name, r in result["chains"].items():
        print(f"{name:<30}{r['removed']['clean']:>14,}{r['removed']['junk']:>13,}{r['mb_per_cpu_s']:>9.1f}")
    print(f"{'junk removed, by kind':<24}" + "".join(f"{name.split(' (')[0]:>10}" for name in names))
    for kind in JUNK_KINDS:
        print(f"{kind:<24}" + "".join(f"{result['chains'][name]['junk_recall'][kind]:>10.2f}" for name in names))
    speed = result["chains"][names[0]]["mb_per_cpu_s"] / result["chains"][names[1]]["mb_per_cpu_s"]
    a = result["chain_agreement"]
    print(f"ours / HojiChar speed: {speed:.1f}x; chains agree on {a['same_decision']:.4f} of documents "
          f"(both remove {a['both']:,}, ours only {a['only_first']:,}, HojiChar only {a['only_second']:,})")
    result["speed_ratio"] = speed
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    with open(DISAGREEMENTS, "w", encoding="utf-8") as f:
        for a, b in (*PAIRS, (names[0], names[1])):
            first = decisions.get(a, chain_removed.get(a))
            second = decisions.get(b, chain_removed.get(b))
            for label, want in ((f"{a} only", (True, False)), (f"{b} only", (False, True))):
                shown = [k for k in range(len(docs)) if (first[k], second[k]) == want][:8]
                for k in shown:
                    text = "\n".join(docs[k][1])
                    f.write(f"### {label}: document {k} ({docs[k][0]}, {len(text):,} chars)\n{text[:400]}\n\n")


if __name__ == "__main__":
    main()
