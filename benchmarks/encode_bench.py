"""Encoding and tokenizer-training speed, id agreement and build-dataset memory on real text.

    python benchmarks/encode_bench.py [--sentences 30000] [--repeats 3]

Text: ../shared/data/corpus-ja/ (Aozora Bunko, Wikipedia, web leads; an equal share of
sentences, whole documents, from each), else the bundled sample corpus. One run, side by side:

- Encoding, alternating a, b, c, f in every repeat; median sentences/s:
    (a) what a user would otherwise run: BertJapaneseTokenizer (AutoTokenizer of our saved
        tokenizer) called on batches of 1000 sentences with return_special_tokens_mask, as HF
        run_mlm's tokenize_function does through datasets.map(batched=True)
    (b) FastEncoder, 1 process (new encoder each repeat: its word cache starts empty)
    (c) FastEncoder in 2 worker processes (encode_in_workers; pool start-up excluded, reported apart)
    (f) fugashi alone: NFKC + MeCab -Owakati per sentence, the floor for any MeCab-based encoder
  Goal: b/a >= 5 and c/b >= 1.7. Ids of (b) are compared with (a) for every sentence.
- Tokenizer training on the same text, alternated: ours (train_tokenizer, 1 process) vs the
  first seed's method (fugashi -Owakati into files, then tokenizers' BertWordPieceTokenizer.train).
- build-dataset peak RSS (parent and worker processes) for the corpus at 1x and 4x (the
  documents written four times), each build in a fresh process with --workers 2.

Rust tokenizers' own thread pool is switched off (TOKENIZERS_PARALLELISM=false) so one
process means one core. Prints a table and writes benchmarks/out/encode_bench.json.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import unicodedata
from itertools import chain
from pathlib import Path

os.environ["TOKENIZERS_PARALLELISM"] = "false"

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data" / "corpus-ja"
OUT = ROOT / "benchmarks" / "out" / "encode_bench.json"
SOURCES = ("aozora_pd_sample", "wikipedia_ja_sample", "web_kwdlc_leads")
HF_BATCH = 1000


def load_documents(n_sentences: int) -> tuple[list[list[str]], str]:
    files = [SHARED / f"{name}.txt.gz" for name in SOURCES]
    if not all(f.is_file() for f in files):
        import re

        from ja_pretrain.resources import sample_corpus_path

        text = sample_corpus_path().read_text(encoding="utf-8")
        docs = [[s for line in block.splitlines() for s in re.split(r"(?<=[。！？])", line) if s.strip()]
                for block in text.split("\n\n") if block.strip()]
        return docs, "bundled sample corpus"
    documents: list[list[str]] = []
    share = n_sentences // len(files)
    for path in files:
        taken = 0
        doc: list[str] = []
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line:
                    doc.append(line)
                    continue
                if doc:
                    documents.append(doc)
                    taken += len(doc)
                    doc = []
                if taken >= share:
                    break
    return documents, "../shared/data/corpus-ja (" + ", ".join(SOURCES) + ")"


def write_corpus(directory: Path, documents: list[list[str]], copies: int = 1) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    body = "\n\n".join("\n".join(d) for d in documents) + "\n"
    for i in range(copies):
        (directory / f"train-{i:05d}.txt").write_text(body, encoding="utf-8")
    return directory


def seed_method_train(text_file: Path, work: Path, vocab_size: int) -> None:
    """The first seed's recipe: MeCab -Owakati into files, then BertWordPieceTokenizer.train."""
    import fugashi
    import ipadic
    from tokenizers import BertWordPieceTokenizer

    tagger = fugashi.GenericTagger(f'-d "{ipadic.DICDIR}" -r "{os.path.join(ipadic.DICDIR, "mecabrc")}" -Owakati')
    wakati = work / "wakati.txt"
    with open(text_file, encoding="utf-8") as src, open(wakati, "w", encoding="utf-8") as out:
        for line in src:
            if line.strip():
                out.write(tagger.parse(line.strip()) + "\n")
    tokenizer = BertWordPieceTokenizer(handle_chinese_chars=False, strip_accents=False, lowercase=False)
    tokenizer.train([str(wakati)], vocab_size=vocab_size, min_frequency=2, limit_alphabet=6129,
                    special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"], show_progress=False)
    tokenizer.save_model(str(work))


def time_hf(tokenizer_dir: Path, sentences: list[str]):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    cpu = time.process_time()
    start = time.perf_counter()
    ids = []
    for i in range(0, len(sentences), HF_BATCH):
        out = tok(sentences[i : i + HF_BATCH], return_special_tokens_mask=True)
        ids.extend(out["input_ids"])
    elapsed = time.perf_counter() - start
    CPU_SECONDS["a"].append(time.process_time() - cpu)
    return elapsed, [x[1:-1] for x in ids]  # drop [CLS] ... [SEP]


def time_ours(tokenizer_dir: Path, sentences: list[str]):
    import numpy as np

    from ja_pretrain.tokenization.encoder import FastEncoder

    encoder = FastEncoder(tokenizer_dir)
    cpu = time.process_time()
    start = time.perf_counter()
    results = [encoder.encode_flat(sentences[i : i + HF_BATCH]) for i in range(0, len(sentences), HF_BATCH)]
    elapsed = time.perf_counter() - start
    CPU_SECONDS["b"].append(time.process_time() - cpu)
    ids = np.concatenate([r[0] for r in results])
    lengths = np.concatenate([r[2] for r in results])
    return elapsed, [a.tolist() for a in np.split(ids, np.cumsum(lengths)[:-1])]


CPU_SECONDS: dict[str, list[float]] = {"a": [], "b": [], "c": [], "f": []}
WARM_UP = ["起動"]


def _count_job(encoder, sentences):
    if sentences == WARM_UP:
        time.sleep(0.5)  # long enough that each worker takes one warm-up job
    ids, _, lengths = encoder.encode_flat(sentences)
    return len(lengths), len(ids)


def _children_cpu() -> float:
    t = os.times()
    return t.children_user + t.children_system


def time_workers(tokenizer_dir: Path, sentences: list[str], workers: int):
    from ja_pretrain.tokenization.encoder import encode_in_workers

    jobs = [sentences[i : i + HF_BATCH] for i in range(0, len(sentences), HF_BATCH)]
    cpu = _children_cpu()
    t0 = time.perf_counter()
    results = encode_in_workers(tokenizer_dir, chain([WARM_UP] * workers, jobs), _count_job, workers=workers)
    for _ in range(workers):
        next(results)  # pool started, every worker has built its encoder
    startup = time.perf_counter() - t0
    start = time.perf_counter()
    done = sum(n for n, _ in results)
    elapsed = time.perf_counter() - start
    assert done == len(sentences)
    CPU_SECONDS["c"].append(_children_cpu() - cpu)  # workers' CPU, start-up included (known once they exit)
    return elapsed, startup


def time_fugashi(sentences: list[str]):
    import fugashi
    import ipadic

    tagger = fugashi.GenericTagger(f'-d "{ipadic.DICDIR}" -r "{os.path.join(ipadic.DICDIR, "mecabrc")}" -Owakati')
    parse = tagger.parse
    cpu = time.process_time()
    start = time.perf_counter()
    for s in sentences:
        parse(unicodedata.normalize("NFKC", s))
    elapsed = time.perf_counter() - start
    CPU_SECONDS["f"].append(time.process_time() - cpu)
    return elapsed


def mismatches(sentences, reference, ours, tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    kinds: dict[str, list] = {}
    for s, a, b in zip(sentences, reference, ours, strict=True):
        if a == b:
            continue
        kind = "different length" if len(a) != len(b) else "same length, other ids"
        kinds.setdefault(kind, []).append({"sentence": s[:120], "hf": tok.convert_ids_to_tokens(a)[:40],
                                           "ours": tok.convert_ids_to_tokens(b)[:40]})
    return kinds


_RSS_PROBE = """
import os, sys, threading, time
from ja_pretrain.dataset import build_dataset

def hwm(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return int(next(l for l in f if l.startswith("VmHWM")).split()[1])
    except (OSError, StopIteration):
        return 0

def children():
    me = str(os.getpid())
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[1] == me:
                    yield pid
        except OSError:
            pass

peaks, done = {}, threading.Event()
def watch():  # VmHWM of every worker while it lives (ru_maxrss would include the parent's size at fork)
    while not done.is_set():
        for pid in children():
            peaks[pid] = max(peaks.get(pid, 0), hwm(pid))
        time.sleep(0.05)

thread = threading.Thread(target=watch, daemon=True)
thread.start()
build_dataset(sys.argv[1], sys.argv[2], sys.argv[3], sequence_length=int(sys.argv[4]), workers=2, force=True,
              progress=False)
done.set()
thread.join()
print(hwm("self"), max(peaks.values(), default=0))
"""


def peak_rss(corpus: Path, tokenizer_dir: Path, out: Path, length: int) -> dict:
    """Peak resident memory (VmHWM) of a build-dataset process and of its largest worker."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _RSS_PROBE, str(corpus), str(tokenizer_dir), str(out), str(length)],
                          capture_output=True, text=True, check=True)
    parent, child = map(int, done.stdout.split()[-2:])
    return {"parent_peak_rss_mb": parent / 1024, "worker_peak_rss_mb": child / 1024,
            "seconds": time.perf_counter() - start}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=30000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--vocab-size", type=int, default=32768)
    args = parser.parse_args()

    from ja_pretrain.tokenization.train import train_tokenizer

    documents, source = load_documents(args.sentences)
    sentences = [s for d in documents for s in d]
    print(f"text: {len(sentences)} sentences, {len(documents)} documents from {source}", file=sys.stderr)
    result: dict = {"source": source, "sentences": len(sentences), "documents": len(documents),
                    "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                "load_average_start": os.getloadavg()}}
    with tempfile.TemporaryDirectory(prefix="encode-bench-") as tmp_name:
        tmp = Path(tmp_name)
        corpus = write_corpus(tmp / "corpus", documents)
        tokenizer_dir = tmp / "tokenizer"

        train_ours, train_seed = [], []
        for r in range(args.repeats):
            t0 = time.perf_counter()
            train_tokenizer(corpus, tokenizer_dir, vocab_size=args.vocab_size, workers=1, force=True)
            train_ours.append(time.perf_counter() - t0)
            work = tmp / f"seed-{r}"
            work.mkdir()
            t0 = time.perf_counter()
            seed_method_train(corpus / "train-00000.txt", work, args.vocab_size)
            train_seed.append(time.perf_counter() - t0)
        print(f"training: ours {train_ours}, seed method {train_seed}", file=sys.stderr)

        times: dict[str, list[float]] = {"a": [], "b": [], "c": [], "f": []}
        startups = []
        reference = ours = None
        for r in range(args.repeats):
            t, reference = time_hf(tokenizer_dir, sentences)
            times["a"].append(t)
            t, ours = time_ours(tokenizer_dir, sentences)
            times["b"].append(t)
            t, startup = time_workers(tokenizer_dir, sentences, 2)
            times["c"].append(t)
            startups.append(startup)
            times["f"].append(time_fugashi(sentences))
            print(f"repeat {r}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()), file=sys.stderr)
        result["load_average_after_encoding"] = os.getloadavg()
        kinds = mismatches(sentences, reference, ours, tokenizer_dir)
        n_bad = sum(len(v) for v in kinds.values())

        rss = {}
        for copies in (1, 4):
            big = write_corpus(tmp / f"rss-corpus-{copies}", documents, copies)
            rss[f"{copies}x"] = peak_rss(big, tokenizer_dir, tmp / f"rss-ds-{copies}", 128)

    rate = {k: len(sentences) / statistics.median(v) for k, v in times.items()}
    result.update({
        "encode_seconds": times, "encode_sentences_per_s": rate, "pool_startup_s": startups,
        "ratio_b_over_a": rate["b"] / rate["a"], "ratio_c_over_b": rate["c"] / rate["b"],
        # each repeat's a, b, c ran back to back, so per-repeat ratios see the same machine load
        "cpu_seconds": CPU_SECONDS,
        "ratio_b_over_a_per_repeat": [a / b for a, b in zip(times["a"], times["b"], strict=True)],
        "ratio_c_over_b_per_repeat": [b / c for b, c in zip(times["b"], times["c"], strict=True)],
        "ids_identical_fraction": 1 - n_bad / len(sentences), "mismatch_kinds": kinds,
        "train_seconds": {"ours": train_ours, "seed_method": train_seed},
        "build_dataset_rss": rss, "load_average_end": os.getloadavg(),
    })
    rows = [
        ("(a) BertJapaneseTokenizer, batches of 1000", f"{rate['a']:,.0f} sent/s", "1.00x"),
        ("(b) FastEncoder, 1 process", f"{rate['b']:,.0f} sent/s",
         f"{rate['b'] / rate['a']:.2f}x a (goal 5x); per repeat "
         + " ".join(f"{r:.2f}" for r in result["ratio_b_over_a_per_repeat"])),
        ("(c) FastEncoder, 2 worker processes", f"{rate['c']:,.0f} sent/s",
         f"{rate['c'] / rate['b']:.2f}x b (goal 1.7x); per repeat "
         + " ".join(f"{r:.2f}" for r in result["ratio_c_over_b_per_repeat"])
         + f"; pool start {statistics.median(startups):.1f}s not counted"),
        ("CPU seconds (load-independent): a / b / c / f", " / ".join(
            f"{statistics.median(CPU_SECONDS[k]):.2f}" for k in "abcf"),
         f"a/b {statistics.median(CPU_SECONDS['a']) / statistics.median(CPU_SECONDS['b']):.2f}x; "
         "c = both workers incl. their start-up"),
        ("(f) fugashi alone (NFKC + -Owakati)", f"{rate['f']:,.0f} sent/s", f"{rate['f'] / rate['a']:.2f}x a"),
        ("ids identical to (a)", f"{100 * result['ids_identical_fraction']:.3f}%",
         f"{n_bad} of {len(sentences)} differ" + (f": {', '.join(f'{k} {len(v)}' for k, v in kinds.items())}" if kinds else "")),
        ("train tokenizer, ours (1 process)", f"{statistics.median(train_ours):.1f} s", ""),
        ("train tokenizer, seed method (-Owakati + BertWordPieceTokenizer)", f"{statistics.median(train_seed):.1f} s",
         f"ours {statistics.median(train_seed) / statistics.median(train_ours):.2f}x as fast"),
    ]
    for copies in ("1x", "4x"):
        r = rss[copies]
        rows.append((f"build-dataset peak RSS, {copies} input (--workers 2)",
                     f"{r['parent_peak_rss_mb']:.0f} MB parent",
                     f"{r['worker_peak_rss_mb']:.0f} MB largest worker, {r['seconds']:.1f}s"))
    width = max(len(r[0]) for r in rows)
    print(f"\nencode_bench: {len(sentences)} sentences, {len(documents)} documents, {source}; "
          f"{os.cpu_count()} CPUs, load average {result['machine']['load_average_start'][0]:.1f} at start, "
          f"{result['load_average_end'][0]:.1f} at end; median of {args.repeats} alternated repeats")
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>18}  {note}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
