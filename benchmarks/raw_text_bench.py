"""The tokenizer without MeCab (`train-tokenizer --word_tokenizer none`) on real text: id
agreement and encoding speed against AutoTokenizer, offsets, and what its word starts are.

    python benchmarks/raw_text_bench.py [--train_sentences 100000] [--sentences 30000] [--repeats 5]

Text: ../shared/data/corpus-ja/ (Aozora Bunko, Wikipedia, web leads, an equal share of whole
documents from each): the first documents train the tokenizers (unigram and bpe, vocabulary
32768, 2 processes), the documents after them are the held-out sentences measured here.

- Ids: FastEncoder.encode_sentences against AutoTokenizer(add_special_tokens=False) of the saved
  tokenizer, every held-out sentence (goal: equal on >= 99.99%). Also the SentencePiece model it
  was converted from (sentencepiece's C++ encode of the NFKC text) against tokenizer.json: how
  faithful the conversion is.
- Speed, alternating a, b, s in every repeat (median; wall and CPU seconds, one core each:
  TOKENIZERS_PARALLELISM=false):
    (a) what a user would otherwise run: AutoTokenizer on batches of 1000 sentences with
        return_special_tokens_mask, as HF run_mlm's tokenize_function does
    (b) FastEncoder.encode_flat on batches of 2000 (a build-dataset job)
    (s) sentencepiece's C++ encode on the same batches: a reference for what ids would cost if
        they had to equal spiece.model's rather than AutoTokenizer's
  and offsets: FastEncoder.encode_with_offsets against AutoTokenizer(return_offsets_mapping=True).
- Word starts: tokens per "▁" word and "▁" words per sentence (what whole-word masking would mask
  without a segmenter), beside MeCab (ipadic) words per sentence.
- Spans (../shared/data/eval): the share of JSQuAD v1.3 valid answers, JaQuAD train answers and
  Wikipedia NER entities that are exactly a run of whole tokens (offsets_bench's measure), beside
  a MeCab (ipadic) + WordPiece tokenizer trained on the same text with the same vocabulary size;
  and characters per token for each.

Prints a table and writes benchmarks/out/raw_text_bench.json.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import unicodedata
from pathlib import Path

os.environ["TOKENIZERS_PARALLELISM"] = "false"

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data" / "corpus-ja"
OUT = ROOT / "benchmarks" / "out" / "raw_text_bench.json"
SOURCES = ("aozora_pd_sample", "wikipedia_ja_sample", "web_kwdlc_leads")
HF_BATCH, OUR_BATCH = 1000, 2000


def split_documents(train_sentences: int, held_out_sentences: int) -> tuple[list[list[str]], list[list[str]]]:
    """Whole documents from each source: the first ones to train on, the next ones held out."""
    train: list[list[str]] = []
    held_out: list[list[str]] = []
    for name in SOURCES:
        wanted = [train_sentences // len(SOURCES), held_out_sentences // len(SOURCES)]
        taken = [0, 0]
        with gzip.open(SHARED / f"{name}.txt.gz", "rt", encoding="utf-8") as f:
            document: list[str] = []
            for line in f:
                if line.strip():
                    document.append(line.strip())
                    continue
                if not document:
                    continue
                part = 0 if taken[0] < wanted[0] else 1
                if taken[1] >= wanted[1]:
                    break
                (train if part == 0 else held_out).append(document)
                taken[part] += len(document)
                document = []
    return train, held_out


def train(documents: list[list[str]], work: Path, model: str) -> tuple[Path, float]:
    """A tokenizer without MeCab (model unigram or bpe), or MeCab ipadic + WordPiece ("mecab")."""
    from ja_pretrain.tokenization.train import train_tokenizer

    text = work / "train.txt"
    if not text.is_file():
        text.write_text("\n\n".join("\n".join(d) for d in documents) + "\n", encoding="utf-8")
    start = time.perf_counter()
    options = {"word_tokenizer": "none", "sentencepiece_model": model} if model != "mecab" else {}
    out = train_tokenizer(text, work / f"tok-{model}", vocab_size=32768, num_files=2, workers=2, force=True, **options)
    return out, time.perf_counter() - start


def span_alignment(directory: Path, sentences: list[str]) -> dict:
    """Characters per token, and the share of answers and entities that are whole tokens."""
    from offsets_bench import SHARED as EVAL_ROOT
    from offsets_bench import alignment, squad_answers

    from ja_pretrain.tokenization.encoder import FastEncoder

    encoder = FastEncoder(directory)
    sets = {"JSQuAD v1.3 valid answers": squad_answers(EVAL_ROOT / "eval" / "jglue" / "jsquad" / "valid-v1.3.json"),
            "JaQuAD train answers": squad_answers(EVAL_ROOT / "eval" / "jaquad" / "jaquad_train.json.gz")}
    ner = json.loads((EVAL_ROOT / "eval" / "ner-wikipedia" / "ner.json").read_text(encoding="utf-8"))
    sets["Wikipedia NER entities"] = [(r["text"], e["span"][0], e["span"][1]) for r in ner for e in r["entities"]]
    result = {"characters_per_token": sum(map(len, sentences)) / sum(map(len, encoder.encode_sentences(sentences)))}
    for name, items in sets.items():
        kinds, misses = alignment(encoder, items)
        result[name] = {"aligned": kinds["aligned"] / sum(kinds.values()), "count": sum(kinds.values()),
                        "kinds": dict(kinds), "examples": misses[:3]}
    return result


def timed(function) -> tuple[float, float, object]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def batches(sentences: list[str], size: int) -> list[list[str]]:
    return [sentences[i:i + size] for i in range(0, len(sentences), size)]


def measure(directory: Path, sentences: list[str], repeats: int) -> dict:
    import sentencepiece as spm
    from transformers import AutoTokenizer

    from ja_pretrain.tokenization.encoder import FastEncoder

    tok = AutoTokenizer.from_pretrained(directory)
    encoder = FastEncoder(directory)
    sp = spm.SentencePieceProcessor(model_file=str(directory / "spiece.model"))
    ours = encoder.encode_sentences(sentences)
    reference = tok(sentences, add_special_tokens=False)["input_ids"]
    theirs = sp.encode([unicodedata.normalize("NFKC", s) for s in sentences], num_threads=1)
    differ = [k for k, (a, b) in enumerate(zip(ours, theirs, strict=True)) if a != b]
    result: dict = {
        "ids_equal_autotokenizer": sum(a == b for a, b in zip(ours, reference, strict=True)) / len(sentences),
        "spiece_model_equal_tokenizer_json": 1 - len(differ) / len(sentences),
        "spiece_model_differences": [[sentences[k], tok.convert_ids_to_tokens(ours[k]),
                                      [sp.IdToPiece(i) for i in theirs[k]]] for k in differ[:5]],
    }
    hf_batches, our_batches = batches(sentences, HF_BATCH), batches(sentences, OUR_BATCH)
    arms = {
        "a": lambda: [tok(b, return_special_tokens_mask=True) for b in hf_batches],
        "b": lambda: [encoder.encode_flat(b) for b in our_batches],
        "s": lambda: [sp.encode([unicodedata.normalize("NFKC", s) for s in b], num_threads=1) for b in our_batches],
        "a_offsets": lambda: [tok(b, add_special_tokens=False, return_offsets_mapping=True) for b in hf_batches],
        "b_offsets": lambda: [encoder.encode_with_offsets(b) for b in our_batches],
    }
    wall: dict[str, list[float]] = {k: [] for k in arms}
    cpu: dict[str, list[float]] = {k: [] for k in arms}
    for r in range(repeats):
        for name, arm in arms.items():
            w, c, _ = timed(arm)
            wall[name].append(w)
            cpu[name].append(c)
        print(f"  repeat {r}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in wall.items()), file=sys.stderr)
    result["sentences_per_s"] = {k: len(sentences) / statistics.median(v) for k, v in wall.items()}
    result["cpu_s"] = {k: statistics.median(v) for k, v in cpu.items()}
    result["wall_s"] = wall
    _, starts = encoder.encode_with_word_starts(sentences)
    tokens, words = sum(map(len, ours)), sum(map(sum, starts))
    result.update(tokens=tokens, characters_per_token=sum(map(len, sentences)) / tokens,
                  tokens_per_space_word=tokens / words, space_words_per_sentence=words / len(sentences),
                  byte_piece_share=sum(p.startswith("<0x") for ids in ours for p in tok.convert_ids_to_tokens(ids))
                  / tokens)
    return result


def mecab_words_per_sentence(sentences: list[str]) -> float:
    from ja_pretrain.tokenization.words import WordSegmenter, WordTokenizerSpec

    segmenter = WordSegmenter(WordTokenizerSpec(kind="mecab", mecab_dic="ipadic"))
    return sum(len(segmenter.surfaces(s)) for s in sentences) / len(sentences)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train_sentences", type=int, default=100_000)
    parser.add_argument("--sentences", type=int, default=30_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", nargs="+", default=["unigram", "bpe"])
    args = parser.parse_args()
    if not all((SHARED / f"{name}.txt.gz").is_file() for name in SOURCES):
        print(f"needs {SHARED}", file=sys.stderr)
        return 1
    train_docs, held_out_docs = split_documents(args.train_sentences, args.sentences)
    sentences = [s for d in held_out_docs for s in d]
    result: dict = {
        "text": {"source": "../shared/data/corpus-ja (" + ", ".join(SOURCES) + ")",
                 "train_sentences": sum(map(len, train_docs)), "held_out_sentences": len(sentences),
                 "held_out_documents": len(held_out_docs)},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_average_start": os.getloadavg()},
        "mecab_ipadic_words_per_sentence": mecab_words_per_sentence(sentences),
        "models": {},
    }
    with tempfile.TemporaryDirectory(prefix="raw-text-bench-") as tmp:
        for model in args.models:
            directory, seconds = train(train_docs, Path(tmp), model)
            print(f"{model}: trained in {seconds:.0f}s", file=sys.stderr)
            result["models"][model] = {"train_s": seconds, **measure(directory, sentences, args.repeats)}
        result["spans"] = {model: span_alignment(Path(tmp) / f"tok-{model}", sentences) for model in args.models}
        train(train_docs, Path(tmp), "mecab")
        result["spans"]["mecab"] = span_alignment(Path(tmp) / "tok-mecab", sentences)
    result["machine"]["load_average_end"] = os.getloadavg()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")

    load = result["machine"]
    print(f"\nraw_text_bench: {len(sentences)} held-out sentences ({len(held_out_docs)} documents), tokenizers trained "
          f"on {result['text']['train_sentences']} others, {result['text']['source']}; vocabulary 32768; "
          f"{os.cpu_count()} CPUs, load average {load['load_average_start'][0]:.1f} at start, "
          f"{load['load_average_end'][0]:.1f} at end; median of {args.repeats} alternated repeats")
    for model, m in result["models"].items():
        rate, cpu = m["sentences_per_s"], m["cpu_s"]
        rows = [
            ("ids equal to AutoTokenizer's", f"{m['ids_equal_autotokenizer']:.4%}", "goal >= 99.99%"),
            ("spiece.model equal to tokenizer.json", f"{m['spiece_model_equal_tokenizer_json']:.4%}",
             "the conversion (SentencePiece's own encode, C++)"),
            ("(a) AutoTokenizer, run_mlm style", f"{rate['a']:,.0f} sent/s", f"CPU {cpu['a']:.2f}s"),
            ("(b) FastEncoder.encode_flat", f"{rate['b']:,.0f} sent/s",
             f"CPU {cpu['b']:.2f}s; b/a {rate['b'] / rate['a']:.2f}x wall, {cpu['a'] / cpu['b']:.2f}x CPU"),
            ("(s) sentencepiece C++ (other ids)", f"{rate['s']:,.0f} sent/s", f"s/b {rate['s'] / rate['b']:.2f}x"),
            ("offsets: AutoTokenizer", f"{rate['a_offsets']:,.0f} sent/s", ""),
            ("offsets: FastEncoder.encode_with_offsets", f"{rate['b_offsets']:,.0f} sent/s",
             f"{rate['b_offsets'] / rate['a_offsets']:.2f}x"),
            ("characters per token", f"{m['characters_per_token']:.3f}", f"byte pieces {m['byte_piece_share']:.3%}"),
            ("'▁' words per sentence", f"{m['space_words_per_sentence']:.2f}",
             f"MeCab ipadic: {result['mecab_ipadic_words_per_sentence']:.1f}"),
            ("tokens per '▁' word", f"{m['tokens_per_space_word']:.1f}", ""),
            ("training (2 processes)", f"{m['train_s']:.0f} s", ""),
        ]
        print(f"\n{model}")
        width = max(len(r[0]) for r in rows)
        for name, value, note in rows:
            print(f"  {name:<{width}}  {value:>16}  {note}")
    names = list(result["spans"]["mecab"])[1:]
    print("\nspans that are exactly a run of whole tokens; characters per token (same text, vocabulary 32768)")
    print(f"  {'tokenizer':<22}" + "".join(f"  {n:>26}" for n in names) + f"  {'chars/token':>11}")
    for model, spans in result["spans"].items():
        label = "MeCab ipadic + WordPiece" if model == "mecab" else f"SentencePiece {model}"
        print(f"  {label:<22}" + "".join(f"  {spans[n]['aligned']:>26.2%}" for n in names)
              + f"  {spans['characters_per_token']:>11.3f}")
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
