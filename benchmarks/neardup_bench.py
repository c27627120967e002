"""Near-duplicate documents: recall, precision and MB/s of ours against datasketch and datatrove.

    python benchmarks/neardup_bench.py [--originals 2000] [--copies 600] [--repeats 3] [--threshold 0.7]

The set: documents of ../shared/data/corpus-ja (Wikipedia, web leads and the first 3,000 characters
of Aozora works, in equal parts) and near copies of some of them, each made one way: a sentence
changed (one sentence replaced by another document's), boilerplate added (two lines of site
furniture), lines reordered (the sentences shuffled). Copies are mixed in after their originals.
A method reads the documents in order and removes each that it finds near an earlier kept one.
Recall: removed copies / copies; precision: removed copies / removed documents. Last, how far
ours and datasketch's signatures put each (original, copy) pair's similarity from the true Jaccard
of their 5-gram sets (RMSE, mean error).

Arms, each the whole route on the same text (character 5-grams, 128 hash functions, the LSH bands
of ja_pretrain.corpus.neardup.lsh_parameters for --threshold), alternated over --repeats:
  ours        numpy shingles + MinHash (one permutation hashing) + bands, BATCH_DOCUMENTS documents at a
              time as the corpus stage's workers make them, in the stage's bounded table
  datasketch  MinHash.update_batch over the 5-grams (its sha1 per shingle) + MinHashLSH
  datatrove   its MinhashDedupSignature.get_signature on 5-grams hashed one by one with xxhash64 as its
              get_shingles does (its own Japanese word shingles need spaCy + SudachiPy), bands in a dict
Prints a table and writes benchmarks/out/neardup_bench.json.
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data" / "corpus-ja"
OUT = ROOT / "benchmarks" / "out" / "neardup_bench.json"
BOILERPLATE = ["この記事へのコメントはまだありません。最初のコメントを書いてみませんか。",
               "Copyright (C) 2024 サンプルニュース All Rights Reserved. 無断転載を禁じます。"]


def load(originals: int) -> list[str]:
    per = originals // 3
    docs = []
    for name, limit in (("wikipedia_ja_sample", None), ("web_kwdlc_leads", None), ("aozora_pd_sample", 3000)):
        with gzip.open(SHARED / f"{name}.txt.gz", "rt", encoding="utf-8") as f:
            got = [d.strip() for d in f.read().split("\n\n") if len(d.strip()) >= 120]
        docs += [d[:limit] if limit else d for d in got[:per]]
    return docs


def build_set(originals: list[str], copies: int, seed: int = 0) -> tuple[list[str], list[bool]]:
    rng = random.Random(seed)
    chosen = set(rng.sample(range(len(originals)), copies))
    docs, is_copy = [], []
    for k, doc in enumerate(originals):
        docs.append(doc)
        is_copy.append(False)
        if k in chosen:
            lines = doc.split("\n")
            way = len(docs) % 3
            if way == 0 and len(lines) > 1:
                other = originals[rng.randrange(len(originals))].split("\n")
                lines[rng.randrange(len(lines))] = other[rng.randrange(len(other))]
            elif way == 1 or len(lines) < 3:
                lines = lines + BOILERPLATE
            else:
                rng.shuffle(lines)
            docs.append("\n".join(lines))
            is_copy.append(True)
    return docs, is_copy


def ours(docs: list[str], threshold: float) -> list[bool]:
    from ja_pretrain.corpus.build import BATCH_DOCUMENTS
    from ja_pretrain.corpus.neardup import NearDuplicateIndex, document_bands

    index = NearDuplicateIndex(64)
    out = []
    for start in range(0, len(docs), BATCH_DOCUMENTS):  # signatures a batch at a time, as the workers make them
        for bands in document_bands(docs[start : start + BATCH_DOCUMENTS], threshold):
            out.append(bool(bands) and index.is_near_duplicate(bands))
    return out


def datasketch_arm(docs: list[str], threshold: float) -> list[bool]:
    from datasketch import MinHash, MinHashLSH

    from ja_pretrain.corpus.neardup import lsh_parameters

    lsh = MinHashLSH(threshold=threshold, num_perm=128, params=lsh_parameters(threshold))
    out = []
    for k, doc in enumerate(docs):
        text = doc  # the same text ours shingles ("\n" between lines)
        m = MinHash(num_perm=128)
        m.update_batch([text[i : i + 5].encode("utf-8") for i in range(len(text) - 4)])
        dup = bool(lsh.query(m))
        if not dup:
            lsh.insert(str(k), m)
        out.append(dup)
    return out


def datatrove_arm(docs: list[str], threshold: float) -> list[bool]:
    import numpy as np
    import xxhash
    from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature

    from ja_pretrain.corpus.neardup import lsh_parameters

    bands, rows = lsh_parameters(threshold)
    # Its constructor loads a spaCy word tokenizer, which its signature step does not use.
    step = MinhashDedupSignature.__new__(MinhashDedupSignature)
    step.config = MinhashConfig(num_buckets=bands, hashes_per_bucket=rows)
    step._parameters = None
    step.num_hashes = bands * rows
    seen: set = set()
    out = []
    for doc in docs:
        shingles = np.fromiter((xxhash.xxh64_intdigest(doc[i : i + 5].encode("utf-8")) for i in range(len(doc) - 4)),
                               dtype=np.uint64).reshape((-1, 1))
        keys = [(b, tuple(sig)) for b, sig in enumerate(step.get_signature(shingles))]
        dup = any(k in seen for k in keys)
        if not dup:
            seen.update(keys)
        out.append(dup)
    return out


def estimate_errors(docs: list[str], is_copy: list[bool]) -> dict[str, dict[str, float]]:
    """How far each arm's signatures put the Jaccard similarity of each (original, copy) pair from
    the true one of their 5-gram sets: RMSE and mean error."""
    import numpy as np
    from datasketch import MinHash

    from ja_pretrain.corpus.neardup import minhash

    def grams(text: str) -> set[str]:
        return {text[i : i + 5] for i in range(len(text) - 4)}

    def datasketch_estimate(a: str, b: str) -> float:
        ms = [MinHash(num_perm=128) for _ in range(2)]
        for m, text in zip(ms, (a, b), strict=True):
            m.update_batch([g.encode("utf-8") for g in grams(text)])
        return ms[0].jaccard(ms[1])

    estimates = {"ours": lambda a, b: float(np.mean(minhash(a) == minhash(b))), "datasketch": datasketch_estimate}
    errors: dict[str, list[float]] = {name: [] for name in estimates}
    for k, copy in enumerate(is_copy):
        if copy:
            a, b = docs[k - 1], docs[k]
            truth = len(grams(a) & grams(b)) / len(grams(a) | grams(b))
            for name, estimate in estimates.items():
                errors[name].append(estimate(a, b) - truth)
    return {name: {"rmse": float(np.sqrt(np.mean(np.square(e)))), "mean_error": float(np.mean(e))}
            for name, e in errors.items()}


def score(removed: list[bool], is_copy: list[bool]) -> tuple[float, float]:
    tp = sum(r and c for r, c in zip(removed, is_copy, strict=True))
    return tp / max(1, sum(is_copy)), tp / max(1, sum(removed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--originals", type=int, default=2000)
    parser.add_argument("--copies", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threshold", type=float, nargs="+", default=[0.7])
    args = parser.parse_args()
    docs, is_copy = build_set(load(args.originals), args.copies)
    megabytes = sum(len(d.encode()) for d in docs) / 1e6
    arms = {"ours": ours, "datasketch": datasketch_arm, "datatrove": datatrove_arm}
    results = {}
    for threshold in args.threshold:
        seconds = {name: [] for name in arms}
        quality = {}
        for _ in range(args.repeats):
            for name, arm in arms.items():
                started = time.process_time()
                removed = arm(docs, threshold)
                seconds[name].append(time.process_time() - started)
                quality[name] = score(removed, is_copy)
        for name in arms:
            median = statistics.median(seconds[name])
            results[f"{name}@{threshold}"] = {"recall": quality[name][0], "precision": quality[name][1],
                                              "cpu_seconds": median, "mb_per_s": megabytes / median}
    print(f"{len(docs):,} documents ({sum(is_copy):,} near copies), {megabytes:.1f} MB; {args.repeats} repeats, "
          "median CPU time, 1 process")
    print(f"{'arm':<24}{'recall':>8}{'precision':>11}{'MB/s':>8}{'ours x':>8}")
    for threshold in args.threshold:
        base = results[f"ours@{threshold}"]["mb_per_s"]
        for name in arms:
            r = results[f"{name}@{threshold}"]
            print(f"{name + ' @' + str(threshold):<24}{r['recall']:>8.3f}{r['precision']:>11.3f}{r['mb_per_s']:>8.2f}"
                  f"{base / r['mb_per_s']:>7.2f}x")
    errors = estimate_errors(docs, is_copy)
    print("estimated Jaccard of the (original, copy) pairs against the true one: "
          + "; ".join(f"{name} RMSE {e['rmse']:.4f}, mean error {e['mean_error']:+.4f}" for name, e in errors.items()))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"machine": platform.processor() or platform.machine(), "python": sys.version.split()[0],
                               "documents": len(docs), "copies": sum(is_copy), "megabytes": megabytes,
                               "results": results, "estimate_errors": errors}, indent=2) + "\n")


if __name__ == "__main__":
    main()
