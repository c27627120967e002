"""Corpus stage throughput and memory on real Japanese text.

    python benchmarks/corpus_bench.py [--repeats 3] [--inputs FILE...]

Input: ../shared/data/corpus-ja/*.txt.gz (Aozora Bunko, Wikipedia, web leads; see its
SOURCE.md) when present, else the bundled sample corpus. Each measurement runs
`python -m ja_pretrain corpus ...` in a fresh process, so imports and pool start-up count.

- Throughput: --workers 1 and --workers 2, alternated (1, 2, 1, 2, ...) over --repeats runs;
  median MB/s (of decompressed input text), sentences/s (sentences written), CPU seconds
  (the build process and its workers), and the wall-clock ratio.
- Memory: peak RSS of the build process for the input once (1x) and the same inputs given
  four times (4x: four times the reading and cleaning; the copies end up as duplicates).
  Streaming means 4x must not need more memory than 1x.

Prints a table and writes benchmarks/out/corpus_bench.json.

    python benchmarks/corpus_bench.py --filters [--workers 2] [--repeats 3] [--before SRC]

- Every filter: the same inputs without and with `--quality all --near-dedup on`, at --workers N,
  alternated; median MB/s of decompressed input text by wall clock and by CPU time (all the
  build's processes), the ratio, and what the filters removed. --before SRC adds an arm that runs
  the filters with the package under SRC first on PYTHONPATH (an older checkout: `git archive
  REV src | tar -x -C DIR`), so that a change is measured against its predecessor in one run.
  Writes benchmarks/out/corpus_filters_bench.json.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data" / "corpus-ja"
OUT = ROOT / "benchmarks" / "out" / "corpus_bench.json"
FILTERS_OUT = ROOT / "benchmarks" / "out" / "corpus_filters_bench.json"
EVERY_FILTER = ("--quality", "all", "--near-dedup", "on")


def default_inputs() -> list[Path]:
    files = sorted(SHARED.glob("*.txt.gz"))
    if files:
        return files
    from ja_pretrain.resources import sample_corpus_path

    return [sample_corpus_path()]


def text_bytes(path: Path) -> int:
    opener = gzip.open if path.suffix == ".gz" else open
    n = 0
    with opener(path, "rb") as f:
        while block := f.read(1 << 20):
            n += len(block)
    return n


def run_build(inputs: list[Path], workers: int, out: Path, extra: tuple[str, ...] = (),
              src: Path | None = None) -> tuple[float, float, int, dict]:
    """Wall seconds, CPU seconds (build process and its workers), peak RSS (KiB) of the
    build process, and its manifest. `extra`: more corpus options; `src`: run the package found
    there instead of the installed one."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "ja_pretrain", "corpus", *map(str, inputs), "--out", str(out),
           "--workers", str(workers), "--no-progress", "--valid-ratio", "0.01", *extra]
    env = {**os.environ, "PYTHONPATH": str(src)} if src else None
    # A fresh child per run measures that run's peak alone: ru_maxrss of RUSAGE_CHILDREN is a
    # maximum over all waited-for children, so it is read in a wrapper process of its own.
    wrapper = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL); "
        "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
        "print(time.perf_counter() - t, u.ru_utime + u.ru_stime, u.ru_maxrss, r.returncode)"
    )
    result = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True, check=True, env=env)
    seconds, cpu, rss, code = result.stdout.split()
    if int(code) != 0:
        raise SystemExit(f"corpus build failed: {' '.join(cmd)}")
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    return float(seconds), float(cpu), int(rss), manifest


def compare_filters(inputs: list[Path], workers: int, repeats: int, before: Path | None) -> None:
    """Plain against every filter (and every filter in an older source tree), alternated."""
    arms: dict[str, tuple[tuple[str, ...], Path | None]] = {"plain": ((), None), "every filter": (EVERY_FILTER, None)}
    if before is not None:
        arms[f"every filter ({before.name})"] = (EVERY_FILTER, before.resolve() / "src")
    load_before = os.getloadavg()[0]
    mb = sum(map(text_bytes, inputs)) / 1e6
    work = Path(tempfile.mkdtemp(prefix="corpus-filters-bench-"))
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in arms}
    removed: dict[str, dict] = {}
    try:
        for _ in range(repeats):
            for name, (extra, src) in arms.items():
                seconds, cpu, _, manifest = run_build(inputs, workers, work / "out", extra, src)
                runs[name].append((seconds, cpu))
                removed[name] = manifest["counts"].get("documents_removed", {})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = {}
    for name, samples in runs.items():
        seconds = statistics.median(s for s, _ in samples)
        cpu = statistics.median(c for _, c in samples)
        rows[name] = {"median_seconds": round(seconds, 3), "median_cpu_seconds": round(cpu, 3),
                      "text_mb_per_s": round(mb / seconds, 2), "text_mb_per_cpu_s": round(mb / cpu, 2),
                      "all_seconds": [round(s, 3) for s, _ in samples], "all_cpu_seconds": [round(c, 3) for _, c in samples],
                      "documents_removed": removed[name]}
    result = {"inputs": [str(p) for p in inputs], "input_text_mb": round(mb, 2), "workers": workers,
              "repeats": repeats, "arms": rows,
              "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "load_avg_1m_before": load_before, "load_avg_1m_after": os.getloadavg()[0]},
              "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    FILTERS_OUT.parent.mkdir(parents=True, exist_ok=True)
    FILTERS_OUT.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    plain = rows["plain"]
    print(f"corpus stage on {', '.join(p.name for p in inputs)}: {mb:.1f} MB of text, --workers {workers}, "
          f"median of {repeats} alternated runs; every filter = {' '.join(EVERY_FILTER)}")
    print(f"{'arm':<28}{'seconds':>9}{'CPU s':>9}{'MB/s':>8}{'MB/CPU s':>10}{'x plain (CPU)':>15}")
    for name, r in rows.items():
        print(f"{name:<28}{r['median_seconds']:>9.2f}{r['median_cpu_seconds']:>9.2f}{r['text_mb_per_s']:>8.2f}"
              f"{r['text_mb_per_cpu_s']:>10.2f}{r['median_cpu_seconds'] / plain['median_cpu_seconds']:>14.2f}x")
    for name, r in rows.items():
        if r["documents_removed"]:
            print(f"removed ({name}): " + ", ".join(f"{n:,} {k}" for k, n in r["documents_removed"].items()))
    print(f"machine: {os.cpu_count()} CPUs, load average {load_before:.1f} before / {os.getloadavg()[0]:.1f} after; "
          f"MB = decompressed text; JSON: {FILTERS_OUT}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--inputs", nargs="*", type=Path, default=None)
    parser.add_argument("--filters", action="store_true", help="plain against every filter (see above)")
    parser.add_argument("--workers", type=int, default=2, help="with --filters")
    parser.add_argument("--before", type=Path, default=None, help="with --filters: an older checkout's root")
    args = parser.parse_args()
    inputs = args.inputs or default_inputs()
    if args.filters:
        compare_filters(inputs, args.workers, args.repeats, args.before)
        return
    load_before = os.getloadavg()[0]
    mb = sum(map(text_bytes, inputs)) / 1e6
    work = Path(tempfile.mkdtemp(prefix="corpus-bench-"))
    try:
        runs: dict[int, list[tuple[float, float, int]]] = {1: [], 2: []}
        outputs: dict[int, bytes] = {}
        for _ in range(args.repeats):
            for workers in (1, 2):
                seconds, cpu, _, manifest = run_build(inputs, workers, work / f"w{workers}")
                c = manifest["counts"]
                runs[workers].append((seconds, cpu, c["train_sentences"] + c["valid_sentences"]))
                outputs[workers] = b"".join(p.read_bytes() for p in sorted((work / f"w{workers}").glob("*.txt")))
        identical = outputs[1] == outputs[2]
        _, _, rss1, _ = run_build(inputs, 1, work / "rss1")
        _, _, rss4, _ = run_build(inputs * 4, 1, work / "rss4")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    rows = {}
    for workers, samples in runs.items():
        seconds = statistics.median(s for s, _, _ in samples)
        cpu = statistics.median(c for _, c, _ in samples)
        sentences = samples[0][2]
        rows[workers] = {"median_seconds": round(seconds, 3), "median_cpu_seconds": round(cpu, 3),
                         "mb_per_s": round(mb / seconds, 2), "sentences_per_s": round(sentences / seconds),
                         "sentences": sentences, "all_seconds": [round(s, 3) for s, _, _ in samples]}
    speedup = rows[1]["median_seconds"] / rows[2]["median_seconds"]
    result = {
        "inputs": [str(p) for p in inputs], "input_text_mb": round(mb, 2), "repeats": args.repeats,
        "workers": rows, "speedup_2_over_1": round(speedup, 3), "outputs_identical": identical,
        "peak_rss_mb": {"1x": round(rss1 / 1024, 1), "4x": round(rss4 / 1024, 1), "ratio_4x_over_1x": round(rss4 / rss1, 3)},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_avg_1m_before": load_before, "load_avg_1m_after": os.getloadavg()[0]},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")

    names = ", ".join(p.name for p in inputs)
    print(f"corpus stage on {names}: {mb:.1f} MB of text, median of {args.repeats} alternated runs")
    print(f"{'':<14}{'seconds':>10}{'CPU s':>10}{'MB/s':>10}{'sentences/s':>14}")
    for workers, r in rows.items():
        print(f"{'--workers ' + str(workers):<14}{r['median_seconds']:>10.2f}{r['median_cpu_seconds']:>10.2f}"
              f"{r['mb_per_s']:>10.2f}{r['sentences_per_s']:>14,}")
    print(f"speed-up 2 vs 1 worker: {speedup:.2f}x; outputs byte-identical: {identical}")
    print(f"peak RSS (--workers 1): 1x input {rss1 / 1024:.0f} MB, 4x input {rss4 / 1024:.0f} MB "
          f"(ratio {rss4 / rss1:.2f})")
    print(f"machine: {os.cpu_count()} CPUs, load average {load_before:.1f} before / {os.getloadavg()[0]:.1f} after "
          f"(other jobs share the CPUs: compare CPU s when the load exceeds the CPU count); JSON: {OUT}")


if __name__ == "__main__":
    main()
