"""Character offsets of the fast encoder on real text: round trip, answer and entity alignment, speed.

    python benchmarks/offsets_bench.py [--tokenizer runs/shared-sample/tokenizer] [--sentences 100000]

- Round trip: for N sentences of ../shared/data/corpus-ja (the web leads' ~13k lines, then equal
  shares of Wikipedia and Aozora for the rest), two checks of every token:
    text            NFKC of the text under the token's offsets is the token's own text (a "##"
                    piece without its "##"; for an [UNK], nothing to compare): a miss is an
                    offset error (goal 0);
    re-encoding     that text, encoded again on its own, gives the token. Expected misses, by kind:
                    nfkc-split (a token made from part of a character NFKC expanded, ㈱ -> ( 株 ),
                    … -> ...: it spans the whole character, which encodes to more), piece (a piece of a longer
                    word is a word start on its own, which WordPiece and MeCab may cut
                    otherwise), unk-word (MeCab may cut an [UNK] word otherwise on its own),
                    mecab-context (a one-token word MeCab cuts otherwise without its context,
                    e.g. 代目 -> 代 目: its text is right, MeCab's segmentation depends on context).
- Answers: for JSQuAD v1.3 valid (and JaQuAD train), the share of gold answers whose characters
  are exactly a run of whole context tokens, and the kinds of misses (starts or ends inside a
  token). The same for the entities of the Wikipedia NER data set.
- Speed: encode_with_offsets against encode_sentences on the same sentences, alternating, 3 rounds.

Prints a table and writes benchmarks/out/offsets_bench.json.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
OUT_DIR = ROOT / "benchmarks" / "out"
CORPUS = ("web_kwdlc_leads", "wikipedia_ja_sample", "aozora_pd_sample")  # the smallest first: see corpus_sentences


def corpus_sentences(n: int) -> list[str]:
    """n lines: an equal share of each file, a file with fewer giving its place to the ones after."""
    sentences: list[str] = []
    for i, name in enumerate(CORPUS):
        share = (n - len(sentences)) // (len(CORPUS) - i)
        with gzip.open(SHARED / "corpus-ja" / f"{name}.txt.gz", "rt", encoding="utf-8") as f:
            taken = [line.rstrip("\n") for line, _ in zip((x for x in f if x.strip()), range(share), strict=False)]
        sentences += taken
    return sentences


def round_trip(encoder, tok, sentences: list[str]) -> tuple[int, list, collections.Counter, int, list]:
    """(offset errors, a few of them, re-encoding misses by kind, tokens checked, a few
    mecab-context misses)."""
    import unicodedata

    names = tok.convert_ids_to_tokens
    slices, meta, errors, error_examples = [], [], 0, []
    for text, (ids, offsets) in zip(sentences, encoder.encode_with_offsets(sentences), strict=True):
        starts = encoder.encode_with_word_starts([text])[1][0] + [True]
        for k, (token_id, (a, b)) in enumerate(zip(ids.tolist(), offsets.tolist(), strict=True)):
            piece, under = names(token_id).removeprefix("##"), unicodedata.normalize("NFKC", text[a:b])
            # a token made from part of a character NFKC expanded (㈱, …) spans that whole character
            split = piece != under and any(len(unicodedata.normalize("NFKC", text[i])) > 1 for i in (a, b - 1))
            if token_id != tok.unk_token_id and (piece not in under if split else piece != under):
                errors += 1
                if len(error_examples) < 10:
                    error_examples.append({"text": text, "token": names(token_id), "under": text[a:b]})
            kind = ("nfkc-split" if split else "unk-word" if token_id == tok.unk_token_id
                    else "piece" if not (starts[k] and starts[k + 1]) else "mecab-context")
            slices.append(text[a:b])
            meta.append((token_id, kind, text))
    misses, examples = collections.Counter(), []
    for (token_id, kind, text), ids, piece in zip(meta, encoder.encode_sentences(slices), slices, strict=True):
        if ids == [token_id] or names(ids) == [names(token_id).removeprefix("##")]:
            continue
        misses[kind] += 1
        if kind == "mecab-context" and len(examples) < 10:
            examples.append({"text": text, "slice": piece, "token": names(token_id), "again": names(ids)})
    return errors, error_examples, misses, len(meta), examples


def alignment(encoder, items: list[tuple[str, int, int]]) -> tuple[collections.Counter, list]:
    """For (text, start, end) spans: aligned / start-inside-token / end-inside-token / both."""
    texts = list(dict.fromkeys(t for t, _, _ in items))
    offsets = dict(zip(texts, (o for _, o in encoder.encode_with_offsets(texts)), strict=True))
    kinds, misses = collections.Counter(), []
    for text, start, end in items:
        spans = offsets[text]
        starts_ok = bool((spans[:, 0] == start).any())
        ends_ok = bool((spans[:, 1] == end).any())
        kind = {(True, True): "aligned", (False, True): "start inside a token", (True, False): "end inside a token",
                (False, False): "both inside tokens"}[(starts_ok, ends_ok)]
        kinds[kind] += 1
        if kind != "aligned" and len(misses) < 8:
            covering = spans[(spans[:, 1] > start) & (spans[:, 0] < end)]
            misses.append({"answer": text[start:end], "tokens": [text[a:b] for a, b in covering.tolist()], "kind": kind})
    return kinds, misses


def squad_answers(path: Path) -> list[tuple[str, int, int]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        document = json.load(f)
    return [(p["context"], a["answer_start"], a["answer_start"] + len(a["text"]))
            for article in document["data"] for p in article["paragraphs"] for q in p["qas"] for a in q["answers"]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokenizer", default=str(ROOT / "runs" / "shared-sample" / "tokenizer"))
    parser.add_argument("--sentences", type=int, default=100_000)
    args = parser.parse_args()
    from transformers import AutoTokenizer

    from ja_pretrain.tokenization.encoder import FastEncoder

    encoder, tok = FastEncoder(args.tokenizer), AutoTokenizer.from_pretrained(args.tokenizer)
    sentences = corpus_sentences(args.sentences)
    started = time.perf_counter()
    errors, error_examples, misses, checked, context_examples = round_trip(encoder, tok, sentences)
    round_trip_seconds = time.perf_counter() - started
    sets = {"JSQuAD v1.3 valid answers": squad_answers(SHARED / "eval" / "jglue" / "jsquad" / "valid-v1.3.json"),
            "JaQuAD train answers": squad_answers(SHARED / "eval" / "jaquad" / "jaquad_train.json.gz")}
    ner = json.loads((SHARED / "eval" / "ner-wikipedia" / "ner.json").read_text(encoding="utf-8"))
    sets["Wikipedia NER entities"] = [(r["text"], e["span"][0], e["span"][1]) for r in ner for e in r["entities"]]
    aligned = {name: alignment(encoder, items) for name, items in sets.items()}
    speeds = collections.defaultdict(list)
    sample = sentences[:20_000]
    for _ in range(3):
        for name, run in (("encode_sentences", encoder.encode_sentences), ("encode_with_offsets",
                                                                             encoder.encode_with_offsets)):
            fresh = FastEncoder(args.tokenizer)  # an empty word cache for each
            run = getattr(fresh, run.__name__)
            t = time.perf_counter()
            run(sample)
            speeds[name].append(len(sample) / (time.perf_counter() - t))
    lines = [f"offsets_bench: tokenizer {args.tokenizer}; {len(sentences):,} sentences of ../shared/data/corpus-ja", "",
             "Round trip of every token: its text under its offsets, and that text encoded again on its own:", "",
             "| tokens | offset errors (goal 0) | re-encoding misses | nfkc-split | piece | unk-word | mecab-context |",
             "| --: | --: | --: | --: | --: | --: | --: |",
             f"| {checked:,} | {errors:,} | {sum(misses.values()):,} | {misses['nfkc-split']:,} | {misses['piece']:,} | "
             f"{misses['unk-word']:,} | {misses['mecab-context']:,} |", "",
             "Spans that are exactly a run of whole tokens:", "",
             "| spans | count | aligned | start inside a token | end inside a token | both |",
             "| :-- | --: | --: | --: | --: | --: |"]
    for name, (kinds, _) in aligned.items():
        total = sum(kinds.values())
        lines.append(f"| {name} | {total:,} | {kinds['aligned'] / total:.2%} | {kinds['start inside a token']:,} | "
                     f"{kinds['end inside a token']:,} | {kinds['both inside tokens']:,} |")
    plain, with_offsets = (statistics.median(speeds[k]) for k in ("encode_sentences", "encode_with_offsets"))
    lines += ["", f"Speed on 20,000 sentences, fresh encoder each time (median of 3): encode_sentences {plain:,.0f} "
              f"sentences/s, encode_with_offsets {with_offsets:,.0f} sentences/s ({plain / with_offsets:.2f}x the time)"]
    table = "\n".join(lines)
    print(table)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "offsets_bench.json").write_text(json.dumps({
        "options": vars(args), "round_trip": {"checked": checked, "offset_errors": errors, "error_examples": error_examples,
                                              "misses": dict(misses), "mecab_context_examples": context_examples,
                                              "seconds": round_trip_seconds},
        "alignment": {name: {"kinds": dict(k), "examples": m} for name, (k, m) in aligned.items()},
        "speed": {k: v for k, v in speeds.items()}, "table": table}, indent=2, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    sys.exit(main())
