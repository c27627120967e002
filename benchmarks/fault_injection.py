"""Fault injection: what a SIGKILL or SIGTERM at a random moment does to each stage's output.

    python benchmarks/fault_injection.py [--trials 5] [--stages corpus run-pretraining] [--seed 0] [--with-pipeline]

Each stage runs on the bundled sample corpus as `python -m ja_pretrain ...`, from a copy of
this working tree's src/ taken at the start, first once uninterrupted into a reference directory
(taking T seconds). Then, per trial, the same command starts into a fresh directory in a session
of its own, and after a delay drawn uniformly from [0.05 T, 0.95 T] (random.Random(--seed)) its
main process, and only that one, gets the signal: a killed parent must not leave its workers
running. Counted over the trials whose run was still going when the signal came:

  looked finished when not   the output has its completion marker (manifest.json, which every
                             stage writes last; MODEL_DIR/final/manifest.json for pretraining,
                             RUN_DIR/report/manifest.json for the pipeline)
                             although the run did not exit 0 and the output is not the reference's,
                             so a rerun would take a partial output as done;
  left behind                2 s after the exit, a live process of the session, or a stray
                             temporary entry in or beside the output (.NAME.tmp-*, .NAME.old-*,
                             *.tokenizer-work-*, *.part; the .NAME.lock files stay by design);
  rerun identical            the same command (run-pretraining with --do_continue) run to the end
                             gives the reference's files, timings aside (see `comparable`); the
                             checkpoint run-pretraining saves when SIGTERM stops it is listed apart.

Before the trials every stage runs a second time uninterrupted and must compare identical to the
reference, which checks the comparison rules themselves. Stages: corpus, train-tokenizer,
build-dataset, run-pretraining (bert-micro, 60 steps, a checkpoint every 10); the quickstart
pipeline with --with-pipeline (minutes per run). Scratch: benchmarks/out/fault_injection/
(--work), wiped at the start. Prints a table and writes benchmarks/out/fault_injection.json with
every trial. Always exits 0: it is a measurement.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "benchmarks" / "out"
STAGES = ("corpus", "train-tokenizer", "build-dataset", "run-pretraining", "pipeline")
SIGNALS = {"SIGKILL": signal.SIGKILL, "SIGTERM": signal.SIGTERM}
STRAY = re.compile(r"^\..+\.(tmp|old)-|\.tokenizer-work-|\.part$")
# Key fragments of wall-clock figures: durations, throughput, MFU, memory, creation stamps.
TIME_LIKE = ("time", "timing", "seconds", "elapsed", "tokens_per", "mfu", "memory", "rss", "created")
# README lines with a speed or a duration in them.
README_TIME_LIKE = ("s/", "seconds", "tokens/s", "MFU")
# A hex digest or a prefix of one (the dataset cache's names): 20+ hex digits, a letter among them
# (a float's digits are at most 17 and an exponent's "e" ends them).
HASH = re.compile(r"\b(?=[0-9]*[a-f])[0-9a-f]{20,64}\b")


@dataclass
class Stage:
    name: str
    args: list[str]          # the CLI arguments, OUT standing for the output directory
    marker: str = "manifest.json"   # written last: its presence means "finished"
    resume: tuple[str, ...] = ()    # added to the rerun after a kill
    needs: tuple[str, ...] = ()     # stages whose reference output the arguments use
    seconds: float = 0.0
    check: str | None = None        # first difference between two uninterrupted runs
    whole_run: bool = False         # a pipeline run directory (see `comparable`)


def make_stages(ref: Path) -> dict[str, Stage]:
    from ja_pretrain.resources import sample_corpus_path

    corpus, tok, dataset = (str(ref / n) for n in ("corpus", "train-tokenizer", "build-dataset"))
    stages = [
        Stage("corpus", ["corpus", str(sample_corpus_path()), *"--out OUT --valid_ratio 0.1 --seed 42 --no_progress".split()]),
        # two parts, so that the words are segmented by worker processes
        Stage("train-tokenizer", ["train-tokenizer", "--input_file", corpus, "--model_dir", "OUT",
                                  *"--vocab_size 4000 --min_frequency 1 --limit_alphabet 2000 --num_files 2".split()],
              needs=("corpus",)),
        # length 64, not 128: bert-micro's sequence length, which run-pretraining checks the dataset against
        Stage("build-dataset", ["build-dataset", "--corpus", corpus, "--tokenizer", tok, "--out", "OUT",
                                *"--sequence-length 64 --workers 2 --no_progress".split()], needs=("corpus", "train-tokenizer")),
        Stage("run-pretraining", ["run-pretraining", "--input_file", dataset, "--tokenizer_dir", tok, "--model_dir", "OUT",
                                  *("--model_type bert-micro --train_steps 60 --save_steps 10 --logging_steps 10 --device cpu "
                                    "--no_progress --seed 0 --peak_tflops 1").split()],
              marker="final/manifest.json", resume=("--do_continue",), needs=("build-dataset", "train-tokenizer")),
        Stage("pipeline", ["pipeline", "configs/quickstart.yaml", "run_dir=OUT"], marker="report/manifest.json", whole_run=True),
    ]
    return {s.name: s for s in stages}


# -- running ------------------------------------------------------------------------------------

def command(stage: Stage, out: Path, resume: bool = False) -> list[str]:
    args = [str(out) if a == "OUT" else a.replace("=OUT", f"={out}") for a in stage.args]
    return [sys.executable, "-m", "ja_pretrain", *args, *(stage.resume if resume else ())]


def start(argv: list[str], log: Path) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as f:
        # a session of its own: its id is the main pid, and every child it starts shares it
        return subprocess.Popen(argv, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)


def finish(proc: subprocess.Popen, timeout: float) -> int:
    """Exit code of `proc`; past `timeout` it is killed (a hang counts as a failure, not a stall)."""
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def run_through(argv: list[str], log: Path, timeout: float) -> tuple[int, float]:
    began = time.perf_counter()
    proc = start(argv, log)
    code, seconds = finish(proc, timeout), time.perf_counter() - began
    kill_session(proc.pid)
    return code, seconds


def session_members(sid: int) -> list[tuple[int, str]]:
    """Live processes of session `sid` (zombies excluded: they hold nothing), as (pid, command).
    /proc/PID/stat has the session id; psutil does not expose it, so it would not save the scan."""
    found = []
    for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()  # the name may hold spaces
            if int(fields[3]) == sid and fields[0] != "Z":
                found.append((pid, Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()))
        except (OSError, ValueError, IndexError):
            continue  # gone while we looked
    return found


def kill_session(sid: int) -> None:
    """SIGKILL what is left of session `sid`, so that trials do not pile up, and wait until it is gone."""
    for _ in range(50):
        members = session_members(sid)
        for pid, _cmd in members:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if not members:
            return
        time.sleep(0.1)


def stray_entries(top: Path) -> list[str]:
    found = []
    for here, dirs, files in os.walk(top):
        for name in [*dirs, *files]:
            if STRAY.search(name):
                found.append(str((Path(here) / name).relative_to(top)))
        dirs[:] = [d for d in dirs if not STRAY.search(d)]  # a stray directory is reported once, not its contents
    return sorted(found)


# -- comparing ----------------------------------------------------------------------------------

def time_like(key: str) -> bool:
    key = key.lower()
    return key.endswith("_s") or any(word in key for word in TIME_LIKE)


def without_time(value):
    if isinstance(value, dict):
        return {k: without_time(v) for k, v in value.items() if not time_like(k)}
    if isinstance(value, list):
        return [without_time(v) for v in value]
    return value


def ignored(rel: Path, whole_run: bool) -> bool:
    # TensorBoard event files: every record carries its wall time and the name the host, pid and
    # start time; train_log.jsonl holds the same figures and is compared.
    # The .NAME.lock files of a pipeline's stages: the pid of their last writer.
    if rel.name.startswith("events.out.tfevents.") or (rel.name.startswith(".") and rel.suffix == ".lock"):
        return True
    # A pipeline's stage logs (console output), its records of each stage (durations, finish
    # times) and its report (dated, with tables of seconds and a speed plot) are about the run;
    # what they report on, the stages' outputs, is compared.
    return whole_run and (rel.parts[0] in ("logs", ".pipeline") or (rel.parts[0] == "report" and rel.name != "manifest.json"))


def comparable(path: Path, root: Path, whole_run: bool):
    """The part of a file that must not depend on the run: bytes, or JSON without wall-clock
    figures, or a model card without its speed lines. The output's own path is replaced, so
    that outputs in different directories compare."""
    data = path.read_bytes().replace(str(root).encode(), b"<OUT>")
    if whole_run and path.suffix in (".json", ".jsonl", ".md", ".yaml"):
        # A stage records the hash of its upstream manifests, creation stamps included (so that a
        # rebuilt upstream reruns it): in a pipeline run, where every upstream is new, so are they.
        data = re.sub(HASH.pattern.encode(), b"<hash>", data)
    if path.name in ("manifest.json", "trainer_state.json") or (whole_run and path.suffix == ".json"):
        return without_time(json.loads(data))
    if path.suffix == ".jsonl":
        return [without_time(json.loads(line)) for line in data.splitlines() if line.strip()]
    if whole_run and path.suffix == ".yaml":  # the resolved config's heading comment has the time of the run
        return [line for line in data.splitlines() if not line.startswith(b"#")]
    if path.name == "README.md":
        return [line for line in data.decode().splitlines() if not any(w in line for w in README_TIME_LIKE)]
    return data


def files(top: Path, whole_run: bool) -> dict[str, Path]:
    """The compared files under `top`, by a name that in a pipeline run has its hash-named
    directories (the dataset cache, keyed by such hashes) made alike."""
    found = {}
    for path in top.rglob("*"):
        rel = path.relative_to(top)
        if path.is_file() and not ignored(rel, whole_run):
            found[HASH.sub("<hash>", str(rel)) if whole_run else str(rel)] = rel
    return found


def stop_checkpoints(ref: Path, out: Path) -> set[Path]:
    """checkpoint-STEP directories of `out` that the reference lacks: run-pretraining saves one
    when SIGTERM stops it, by design, so it is listed rather than counted as a difference."""
    return {p.relative_to(out) for p in out.rglob("checkpoint-*") if p.is_dir() and not (ref / p.relative_to(out)).exists()}


def differences(ref: Path, out: Path, whole_run: bool = False) -> list[str]:
    """The files that differ, in path order (empty: identical)."""
    extra_dirs = stop_checkpoints(ref, out)
    ours = files(ref, whole_run)
    theirs = {name: rel for name, rel in files(out, whole_run).items() if not extra_dirs & set(rel.parents)}
    found = []
    for name in sorted(ours.keys() | theirs.keys()):
        if name not in theirs or name not in ours:
            found.append(f"{name} ({'missing' if name not in theirs else 'extra'})")
        elif comparable(ref / ours[name], ref, whole_run) != comparable(out / theirs[name], out, whole_run):
            found.append(name)
    return found


# -- trials -------------------------------------------------------------------------------------

def trial(stage: Stage, sig: str, delay: float, ref: Path, top: Path, logs: Path) -> dict:
    out, timeout = top / "out", 10 * stage.seconds + 60
    proc = start(command(stage, out), logs / "run.log")
    time.sleep(delay)
    signalled = proc.poll() is None
    if signalled:
        os.kill(proc.pid, SIGNALS[sig])  # the main process only: its children must go by themselves
    code = finish(proc, timeout)
    time.sleep(2)  # let children that were told of the parent's death exit
    survivors = session_members(proc.pid)
    if survivors:  # slow to go on a busy machine, or not going at all?
        time.sleep(8)
    lingering = session_members(proc.pid) if survivors else []
    kill_session(proc.pid)
    record = {"stage": stage.name, "signal": sig, "delay_s": round(delay, 3), "signalled": signalled, "exit_code": code,
              "marker_after_signal": (out / stage.marker).exists(),
              "survivors": [f"{pid} {cmd}" for pid, cmd in survivors],
              "survivors_after_10s": [f"{pid} {cmd}" for pid, cmd in lingering], "stray": stray_entries(top)}
    record["left_behind"] = bool(survivors or record["stray"])
    # A marker beside a complete output only means the signal came after the work was committed
    # (while the process printed its summary, say): only a marker on a partial output misleads.
    record["complete_after_signal"] = record["marker_after_signal"] and not differences(ref, out, stage.whole_run)
    record["looked_finished"] = record["marker_after_signal"] and code != 0 and not record["complete_after_signal"]
    rerun_code, _ = run_through(command(stage, out, resume=True), logs / "rerun.log", timeout)
    diffs = differences(ref, out, stage.whole_run) if rerun_code == 0 else ["(the rerun failed)"]
    record.update(rerun_exit_code=rerun_code, identical=not diffs, first_difference=diffs[0] if diffs else None,
                  differing_files=diffs[:20], stop_checkpoints=sorted(map(str, stop_checkpoints(ref, out))))
    return record


def references(stages: dict[str, Stage], wanted: list[str], work: Path) -> None:
    """Reference outputs of the wanted stages and of those they read; a second uninterrupted run
    of each wanted stage must compare identical to its reference. Sets each stage's T."""
    needed = [n for n in stages if n in wanted or any(n in stages[w].needs for w in wanted)]
    for name in needed:
        stage = stages[name]
        code, stage.seconds = run_through(command(stage, work / "ref" / name), work / "logs" / "ref" / f"{name}.log", 3600)
        if code:
            sys.exit(f"{name}: the reference run failed with exit code {code}; see {work / 'logs' / 'ref'}")
        print(f"reference {name}: {stage.seconds:.1f} s", flush=True)
    print("second uninterrupted run of each stage, to check the comparison", flush=True)
    for name in wanted:
        stage, again = stages[name], work / "ref2" / name
        _, seconds = run_through(command(stage, again), work / "logs" / "ref2" / f"{name}.log", 10 * stage.seconds + 60)
        # the faster of the two: a busy machine slows one run, and kill times past the real end are wasted trials
        stage.seconds = min(stage.seconds, seconds)
        stage.check = next(iter(differences(work / "ref" / name, again, stage.whole_run)), None)
        if stage.check:
            print(f"CHECK FAILED: two uninterrupted {name} runs differ at {stage.check}; its 'rerun identical' "
                  "column is not meaningful", flush=True)


def table(stages: dict[str, Stage], wanted: list[str], records: list[dict]) -> str:
    """Counts over the trials whose run was still going when its signal came."""
    lines = ["T (uninterrupted): " + ", ".join(f"{n} {stages[n].seconds:.1f} s" for n in wanted), "",
             "| stage | signal | tried | rerun identical | looked finished when not | left behind |",
             "| :-- | :-- | --: | --: | --: | --: |"]
    for name in wanted:
        for sig in SIGNALS:
            rows = [r for r in records if r["stage"] == name and r["signal"] == sig and r["signalled"]]
            lines.append(f"| {name} | {sig} | {len(rows)} | {sum(r['identical'] for r in rows)} | "
                         f"{sum(r['looked_finished'] for r in rows)} | {sum(r['left_behind'] for r in rows)} |")
    early = sum(not r["signalled"] for r in records)
    if early:
        lines.append(f"\n{early} trial(s) finished before their signal came and are not counted (see the JSON)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=5, help="per stage and signal")
    parser.add_argument("--stages", nargs="+", choices=STAGES, help="a subset of the stages")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill delays")
    parser.add_argument("--work", type=Path, default=OUT_DIR / "fault_injection", help="scratch directory, wiped first")
    parser.add_argument("--with-pipeline", action="store_true", help="also the quickstart pipeline (minutes per run)")
    args = parser.parse_args()
    work = args.work.resolve()
    shutil.rmtree(work, ignore_errors=True)
    # Every run uses a copy of the working tree's src/ taken now: others may edit src/ during the
    # minutes this takes, and a reference and a rerun made by different code would not compare.
    src = shutil.copytree(ROOT / "src", work / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(src), os.environ.get("PYTHONPATH")) if p)
    sys.path.insert(0, str(src))
    stages = make_stages(work / "ref")
    wanted = [n for n in STAGES if n in (args.stages or STAGES[:4] + ("pipeline",) * args.with_pipeline)]
    references(stages, wanted, work)

    rng, records = random.Random(args.seed), []
    for name in wanted:
        stage = stages[name]
        for sig in SIGNALS:
            for i in range(args.trials):
                delay = rng.uniform(0.05 * stage.seconds, 0.95 * stage.seconds)
                top = work / "trials" / name / f"{sig}-{i}"
                records.append(trial(stage, sig, delay, work / "ref" / name, top, work / "logs" / name / f"{sig}-{i}"))
                r = records[-1]
                print(f"  {name} {sig} #{i}: delay {delay:.2f} s, exit {r['exit_code']}, identical {r['identical']}, "
                      f"looked finished {r['looked_finished']}, left behind {r['survivors'] + r['stray']}", flush=True)

    print("\n" + table(stages, wanted, records))
    counted = [r for r in records if r["signalled"]]
    differ, left, looked = (sum(not r["identical"] for r in counted), sum(r["left_behind"] for r in counted),
                            sum(r["looked_finished"] for r in counted))
    if differ or left or looked:
        print(f"\nPROBLEMS: {differ} trial(s) not identical on rerun, {left} left something behind, "
              f"{looked} looked finished when not (see the JSON)")
    elif counted:
        print("\nevery trial reran identical and left nothing behind")
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    checks = {n: {"seconds": stages[n].seconds, "uninterrupted_check": stages[n].check or "identical"} for n in wanted}
    report = {"trials_per_signal": args.trials, "seed": args.seed, "stages": checks, "trials": records}
    (OUT_DIR / "fault_injection.json").write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    print(f"wrote {OUT_DIR / 'fault_injection.json'}")


if __name__ == "__main__":
    main()
