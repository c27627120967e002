"""Fault injection: what a SIGKILL or SIGTERM at a random moment does to each route users run.

    python benchmarks/fault_injection.py [--trials 5] [--stages corpus torchrun-pretraining ...] [--seed 0]
                                         [--signals SIGTERM ...] [--with-quickstart]

Each route runs on the bundled sample corpus as `python -m ja_pretrain ...` (under `python -m
torch.distributed.run` for torchrun-pretraining), from a copy of this working tree's src/ taken at
the start, first once uninterrupted into a reference directory (taking T seconds). Then, per trial,
the same command starts into a fresh directory in a session of its own, and after a delay drawn
uniformly from [0.05 T, 0.95 T] (random.Random(--seed)) one process gets the fault:

  SIGKILL, SIGTERM           the command's main process, and only that one (a pipeline, a launcher):
                             a killed parent must not leave its workers, stages or ranks running;
  SIGKILL to a rank          one of torchrun's two ranks, drawn at random (once both have started):
                             the launcher must end the other.

torchrun-pretraining gets SIGKILL to a rank and SIGTERM to the launcher (the issue's routes), and
SIGKILL to the launcher besides.

Counted over the trials whose run was still going when the fault came:

  looked finished when not   a completion marker is there (manifest.json, which every stage writes
                             last; final/manifest.json for pretraining; each stage's manifest in a
                             pipeline's run directory) although the run did not exit 0 and what the
                             marker vouches for is not the reference's, so a rerun would take a
                             partial output as done;
  left behind                10 s after the command's exit, a live process it started (found by an
                             environment variable each run carries, so that a pipeline's stage and
                             torchrun's ranks, in sessions of their own, are found too; how long the
                             last one took to go is recorded), or a stray temporary entry in or beside
                             the output (.NAME.tmp-*, .NAME.old-*, *.tokenizer-work-*, *.part; the
                             .NAME.lock files stay by design);
  rerun identical            the same command (run-pretraining with --do_continue; a pipeline as it
                             was) run to the end gives the reference's files, timings aside (see
                             `comparable`); the checkpoints a stopped training saves are listed apart.

Before the trials every route runs a second time uninterrupted and must compare identical to the
reference, which checks the comparison rules themselves. Routes: corpus, train-tokenizer,
build-dataset, run-pretraining (bert-micro, 60 steps, a checkpoint every 10); extract-electra (of
an electra-micro final/ trained first, 30 steps); evaluate --out (the bert-micro and the extracted
ELECTRA); finetune --out (the smoke task on the bundled sample, 300 training pairs, 1 epoch);
report --out (of the micro pipeline's run directory); pipeline (corpus -> tokenizer -> bert-micro,
30 steps) and pipeline-torchrun (the same, its training stage under `launch: torchrun --standalone
--nproc_per_node 2`, 300 steps, a checkpoint every 50: see LAUNCHED_TRAINING); torchrun-pretraining
(run-pretraining on 2 gloo ranks, 300 steps, a checkpoint every 50); the
quickstart pipeline with --with-quickstart (minutes per run). Routes under torchrun run with
OMP_NUM_THREADS=1, which torchrun sets for several ranks per node but not for one, so that their
runs compare bit for bit whatever the launch. Scratch: benchmarks/out/fault_injection/ (--work),
wiped at the start. Prints a table and writes benchmarks/out/fault_injection.json with every
trial. Always exits 0: it is a measurement.
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
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "benchmarks" / "out"
# The measured routes, in the order they run and print; "run-pretraining-electra" only makes
# extract-electra's input unless named.
STAGES = ("corpus", "train-tokenizer", "build-dataset", "run-pretraining", "run-pretraining-electra", "extract-electra",
          "evaluate", "finetune", "pipeline", "report", "pipeline-torchrun", "torchrun-pretraining", "quickstart")
DEFAULT = tuple(n for n in STAGES if n not in ("run-pretraining-electra", "quickstart"))
# A fault: the signal, and whom it goes to.
FAULTS = {"SIGKILL": (signal.SIGKILL, "main"), "SIGTERM": (signal.SIGTERM, "main"),
          "SIGKILL to a rank": (signal.SIGKILL, "rank")}
# Every process a run starts inherits this variable, with a value of that run's own.
RUN_ENV = "JA_PRETRAIN_FAULT_INJECTION_RUN"
LINGER_S = 10  # a process alive this long after its command's exit is left behind
STRAY = re.compile(r"^\..+\.(tmp|old)-|\.tokenizer-work-|\.part$")
# Key fragments of wall-clock figures: durations, throughput, MFU, memory, creation stamps.
TIME_LIKE = ("time", "timing", "seconds", "elapsed", "tokens_per", "mfu", "memory", "rss", "created")
# The JSON files that record timings beside their results.
RESULT_JSON = ("manifest.json", "trainer_state.json", "metrics.json", "scores.json", "suite.json")
# README lines with a speed or a duration in them.
README_TIME_LIKE = ("s/", "seconds", "tokens/s", "MFU")
# A hex digest or a prefix of one (the dataset cache's names): 20+ hex digits, a letter among them
# (a float's digits are at most 17 and an exponent's "e" ends them).
HASH = re.compile(r"\b(?=[0-9]*[a-f])[0-9a-f]{20,64}\b")
TORCHRUN = ("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2")
# run-pretraining's options in every training route but the quickstart's
MICRO_TRAINING = {"model_type": "bert-micro", "device": "cpu", "no_progress": True, "seed": 0, "peak_tflops": 1,
                  "save_steps": 10, "logging_steps": 10}
# Under torchrun: starting the ranks takes 10-15 s on a loaded 2-core machine, which with 60 steps
# was most of T, and most signals came before the first step; 300 steps make training most of it.
LAUNCHED_TRAINING = {"train_steps": 300, "save_steps": 50}


@dataclass
class Stage:
    name: str
    args: list[str]          # the CLI arguments, OUT standing for the output directory
    markers: tuple[str, ...] = ("manifest.json",)  # each written last in its directory: "that is finished"
    resume: tuple[str, ...] = ()    # added to the rerun after a fault
    needs: tuple[str, ...] = ()     # stages whose reference output the arguments use
    faults: tuple[str, ...] = ("SIGKILL", "SIGTERM")
    launcher: tuple[str, ...] = ()  # python arguments before `-m ja_pretrain`
    env: dict[str, str] = field(default_factory=dict)
    whole_run: bool = False         # a pipeline run directory (see `comparable`)
    seconds: float = 0.0
    check: str | None = None        # first difference between two uninterrupted runs


def training_args(**options) -> list[str]:
    """run-pretraining's command-line options: MICRO_TRAINING's, updated by `options`."""
    words = []
    for key, value in {**MICRO_TRAINING, **options}.items():
        words += [f"--{key}"] if value is True else [f"--{key}", str(value)]
    return words


def pipeline_config(path: Path, launch: str | None = None) -> Path:
    """A micro pipeline: the sample corpus, a tokenizer, bert-micro (30 steps; LAUNCHED_TRAINING's
    under `launch`)."""
    training = {"input_file": "${corpus}", "tokenizer_dir": "${tokenizer}", **MICRO_TRAINING, "train_steps": 30,
                **(LAUNCHED_TRAINING if launch else {})}
    lines = ["run_dir: runs/unused", "stages:",
             "  corpus:", "    command: corpus",
             "    args: {inputs: ['${sample_corpus}'], valid_ratio: 0.1, seed: 42, no_progress: true}",
             "  tokenizer:", "    command: train-tokenizer",
             "    args: {input_file: '${corpus}', vocab_size: 4000, min_frequency: 1, limit_alphabet: 2000}",
             "  bert:", "    command: run-pretraining", *([f"    launch: {launch}"] if launch else []),
             f"    args: {json.dumps(training)}"]  # (JSON is YAML)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def make_stages(work: Path) -> dict[str, Stage]:
    from ja_pretrain.resources import sample_corpus_path

    ref = work / "ref"
    corpus, tok, dataset = (str(ref / n) for n in ("corpus", "train-tokenizer", "build-dataset"))
    pretraining = ["--input_file", dataset, "--tokenizer_dir", tok, "--model_dir", "OUT"]
    pipeline_markers = ("corpus/manifest.json", "tokenizer/manifest.json", "bert/final/manifest.json")
    torchrun_env = {"OMP_NUM_THREADS": "1"}
    stages = [
        Stage("corpus", ["corpus", str(sample_corpus_path()), *"--out OUT --valid_ratio 0.1 --seed 42 --no_progress".split()]),
        # two parts, so that the words are segmented by worker processes
        Stage("train-tokenizer", ["train-tokenizer", "--input_file", corpus, "--model_dir", "OUT",
                                  *"--vocab_size 4000 --min_frequency 1 --limit_alphabet 2000 --num_files 2".split()],
              needs=("corpus",)),
        # length 64, not 128: the micro presets' sequence length, which run-pretraining checks the dataset against
        Stage("build-dataset", ["build-dataset", "--corpus", corpus, "--tokenizer", tok, "--out", "OUT",
                                *"--sequence-length 64 --workers 2 --no_progress".split()], needs=("corpus", "train-tokenizer")),
        Stage("run-pretraining", ["run-pretraining", *pretraining, *training_args(train_steps=60)],
              markers=("final/manifest.json",), resume=("--do_continue",), needs=("build-dataset", "train-tokenizer")),
        Stage("run-pretraining-electra", ["run-pretraining", *pretraining,
                                          *training_args(model_type="electra-micro", train_steps=30)],
              markers=("final/manifest.json",), resume=("--do_continue",), needs=("build-dataset", "train-tokenizer")),
        Stage("extract-electra", ["extract-electra", "--input_dir", str(ref / "run-pretraining-electra" / "final"),
                                  "--output_dir", "OUT", "--model_type", "electra-micro"],
              needs=("run-pretraining-electra",)),
        Stage("evaluate", ["evaluate", str(ref / "run-pretraining"), str(ref / "extract-electra"), "--corpus", corpus,
                           "--out", "OUT", "--device", "cpu", "--seed", "0"],
              needs=("corpus", "run-pretraining", "extract-electra")),
        Stage("finetune", ["finetune", str(ref / "run-pretraining"), "--task", "smoke", "--out", "OUT",
                           *"--learning_rate 0.0005 --epochs 1 --max_train_samples 300 --device cpu --no_progress".split()],
              needs=("run-pretraining",)),
        Stage("pipeline", ["pipeline", str(pipeline_config(work / "configs" / "pipeline.yaml")), "run_dir=OUT"],
              markers=pipeline_markers, whole_run=True),
        Stage("report", ["report", str(ref / "pipeline"), "--out", "OUT"], needs=("pipeline",)),
        Stage("pipeline-torchrun", ["pipeline", str(pipeline_config(work / "configs" / "pipeline-torchrun.yaml",
                                                                    "torchrun --standalone --nproc_per_node 2")),
                                    "run_dir=OUT"],
              markers=pipeline_markers, whole_run=True, env=torchrun_env),
        Stage("torchrun-pretraining", ["run-pretraining", *pretraining, *training_args(**LAUNCHED_TRAINING)],
              markers=("final/manifest.json",), resume=("--do_continue",), needs=("build-dataset", "train-tokenizer"),
              # SIGKILL: of the launcher, not a route the issue names: torchrun does not pass it on
              faults=("SIGKILL to a rank", "SIGTERM", "SIGKILL"), launcher=TORCHRUN, env=torchrun_env),
        Stage("quickstart", ["pipeline", "configs/quickstart.yaml", "run_dir=OUT"], markers=("report/manifest.json",),
              whole_run=True),
    ]
    return {s.name: s for s in stages}


# -- running ------------------------------------------------------------------------------------

def command(stage: Stage, out: Path, resume: bool = False) -> list[str]:
    args = [str(out) if a == "OUT" else a.replace("=OUT", f"={out}") for a in stage.args]
    return [sys.executable, *stage.launcher, "-m", "ja_pretrain", *args, *(stage.resume if resume else ())]


@dataclass
class Run:
    proc: subprocess.Popen
    tag: str  # the value of RUN_ENV in every process of this run


def start(stage: Stage, argv: list[str], log: Path) -> Run:
    log.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex
    # torchrun on PATH, as in a user's active venv (a pipeline's `launch: torchrun ...` looks it up)
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "PATH": path, **stage.env, RUN_ENV: tag}
    with open(log, "ab") as f:
        # a session of its own: its id is the main pid, and every child it starts shares it
        proc = subprocess.Popen(argv, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    return Run(proc, tag)


def finish(proc: subprocess.Popen, timeout: float) -> int:
    """Exit code of `proc`; past `timeout` it is killed (a hang counts as a failure, not a stall)."""
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def run_through(stage: Stage, argv: list[str], log: Path, timeout: float) -> tuple[int, float]:
    began = time.perf_counter()
    run = start(stage, argv, log)
    code, seconds = finish(run.proc, timeout), time.perf_counter() - began
    kill_all(run)
    return code, seconds


def members(run: Run) -> list[tuple[int, str]]:
    """Live processes of `run` (zombies excluded: they hold nothing), as (pid, command): those of
    its session, and those carrying its RUN_ENV value, which a pipeline's stages and torchrun's
    ranks keep in sessions of their own. /proc/PID/stat has the session id; psutil does not expose
    it, so it would not save the scan."""
    found, marker = [], f"{RUN_ENV}={run.tag}".encode()
    for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()  # the name may hold spaces
            if fields[0] == "Z":
                continue
            ours = int(fields[3]) == run.proc.pid
            if not ours:
                with contextlib.suppress(PermissionError):
                    ours = marker in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            if ours:
                found.append((pid, Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()))
        except (OSError, ValueError, IndexError):
            continue  # gone while we looked
    return found


def kill_all(run: Run) -> None:
    """SIGKILL what is left of `run`, so that trials do not pile up, and wait until it is gone."""
    for _ in range(50):
        left = members(run)
        for pid, _cmd in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if not left:
            return
        time.sleep(0.1)


def ranks(run: Run) -> dict[int, int]:
    """torchrun's workers of `run`: rank -> pid."""
    found = {}
    for pid, _cmd in members(run):
        with contextlib.suppress(OSError):
            env = dict(v.split(b"=", 1) for v in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if b"=" in v)
            if b"LOCAL_RANK" in env and b"TORCHELASTIC_RUN_ID" in env:
                found[int(env[b"RANK"])] = pid
    return found


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
    figures, or a model card without its speed lines, or a report without the time it was
    written. The output's own path is replaced, so that outputs in different directories compare."""
    data = path.read_bytes().replace(str(root).encode(), b"<OUT>")
    if whole_run and path.suffix in (".json", ".jsonl", ".md", ".yaml"):
        # A stage records the hash of its upstream manifests, creation stamps included (so that a
        # rebuilt upstream reruns it): in a pipeline run, where every upstream is new, so are they.
        data = re.sub(HASH.pattern.encode(), b"<hash>", data)
    if path.name in RESULT_JSON or (whole_run and path.suffix == ".json"):
        return without_time(json.loads(data))
    if path.suffix == ".jsonl":
        return [without_time(json.loads(line)) for line in data.splitlines() if line.strip()]
    if whole_run and path.suffix == ".yaml":  # the resolved config's heading comment has the time of the run
        return [line for line in data.splitlines() if not line.startswith(b"#")]
    if path.name == "README.md":
        return [line for line in data.decode().splitlines() if not any(w in line for w in README_TIME_LIKE)]
    if path.name == "report.md":  # "Written DATE TIME."; the rest is the run directory's own figures
        return [line for line in data.decode().splitlines() if not line.startswith("Written ")]
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


def misleading_markers(stage: Stage, ref: Path, out: Path) -> list[str]:
    """The completion markers in `out` whose directory is not the reference's: each would make a
    rerun (or a pipeline, or a user) take a partial output as done."""
    found = []
    for marker in stage.markers:
        if (out / marker).exists():
            vouched = Path(marker).parent
            if differences(ref / vouched, out / vouched, stage.whole_run):
                found.append(marker)
    return found


# -- trials -------------------------------------------------------------------------------------

def deliver(run: Run, fault: str, delay: float, rng: random.Random) -> dict:
    """Wait `delay` seconds, then send the fault; what was signalled, and when."""
    signum, target = FAULTS[fault]
    began = time.perf_counter()
    time.sleep(delay)
    pid, rank = run.proc.pid, None
    if target == "rank":  # a rank that has not started yet cannot be killed: wait for both
        while run.proc.poll() is None and len(found := ranks(run)) < 2:
            time.sleep(0.05)
        if run.proc.poll() is None:
            rank = rng.choice(sorted(found))
            pid = found[rank]
    signalled = run.proc.poll() is None
    if signalled:
        os.kill(pid, signum)  # one process only: the others must go by themselves
    return {"signalled": signalled, "signal_at_s": round(time.perf_counter() - began, 3), "rank": rank}


def running_stage(log: Path) -> str | None:
    """The pipeline stage that was running when the fault came (its log's last stage line)."""
    with contextlib.suppress(OSError):
        lines = re.findall(r"^pipeline: \[\d+/\d+\] ([^:]+): ", log.read_text(errors="replace"), re.M)
        return lines[-1] if lines else None
    return None


def outlivers(run: Run) -> tuple[list[str], float]:
    """Processes of `run` alive LINGER_S after its main process exited, and when the last other
    one went (seconds after that exit)."""
    began = time.perf_counter()
    while (left := members(run)) and time.perf_counter() - began < LINGER_S:
        time.sleep(0.2)
    return [f"{pid} {cmd}" for pid, cmd in left], round(time.perf_counter() - began, 1)


def trial(stage: Stage, fault: str, delay: float, rng: random.Random, ref: Path, top: Path, logs: Path) -> dict:
    out, timeout = top / "out", 10 * stage.seconds + 60
    run = start(stage, command(stage, out), logs / "run.log")
    record = {"stage": stage.name, "signal": fault, "delay_s": round(delay, 3), **deliver(run, fault, delay, rng)}
    record["running_stage"] = running_stage(logs / "run.log") if stage.whole_run else None
    # whether training had begun: its log has a line per --logging_steps
    record["train_log_lines_at_signal"] = sum(p.read_text().count("\n") for p in out.rglob("train_log.jsonl"))
    code = finish(run.proc, timeout)
    survivors, gone_after = outlivers(run)
    kill_all(run)
    markers = [m for m in stage.markers if (out / m).exists()]
    checkpoints = sorted(str(p.relative_to(out)) for p in out.rglob("checkpoint-*") if p.is_dir())
    # A marker beside a complete output only means the signal came after the work was committed
    # (while the process printed its summary, say): only a marker on a partial output misleads.
    misleading = misleading_markers(stage, ref, out) if code != 0 else []
    record.update(exit_code=code, markers_after_signal=markers, checkpoints_after_signal=checkpoints,
                  misleading_markers=misleading,
                  looked_finished=bool(misleading), survivors_after_10s=survivors, processes_gone_after_s=gone_after,
                  stray=stray_entries(top), log=str(logs / "run.log"))
    record["left_behind"] = bool(survivors or record["stray"])
    rerun_code, _ = run_through(stage, command(stage, out, resume=True), logs / "rerun.log", timeout)
    diffs = differences(ref, out, stage.whole_run) if rerun_code == 0 else ["(the rerun failed)"]
    record.update(rerun_exit_code=rerun_code, identical=not diffs, first_difference=diffs[0] if diffs else None,
                  differing_files=diffs[:20], stop_checkpoints=sorted(map(str, stop_checkpoints(ref, out))))
    return record


def references(stages: dict[str, Stage], wanted: list[str], work: Path) -> None:
    """Reference outputs of the wanted stages and of those they read; a second uninterrupted run
    of each wanted stage must compare identical to its reference. Sets each stage's T."""
    def needed(name: str) -> set[str]:
        return {name}.union(*(needed(n) for n in stages[name].needs))

    for name in [n for n in stages if n in set().union(*map(needed, wanted))]:
        stage = stages[name]
        code, stage.seconds = run_through(stage, command(stage, work / "ref" / name), work / "logs" / "ref" / f"{name}.log",
                                          3600)
        if code:
            sys.exit(f"{name}: the reference run failed with exit code {code}; see {work / 'logs' / 'ref'}")
        print(f"reference {name}: {stage.seconds:.1f} s", flush=True)
    print("second uninterrupted run of each stage, to check the comparison", flush=True)
    for name in wanted:
        stage, again = stages[name], work / "ref2" / name
        _, seconds = run_through(stage, command(stage, again), work / "logs" / "ref2" / f"{name}.log",
                                 10 * stage.seconds + 60)
        # the faster of the two: a busy machine slows one run, and kill times past the real end are wasted trials
        stage.seconds = min(stage.seconds, seconds)
        stage.check = next(iter(differences(work / "ref" / name, again, stage.whole_run)), None)
        if stage.check:
            print(f"CHECK FAILED: two uninterrupted {name} runs differ at {stage.check}; its 'rerun identical' "
                  "column is not meaningful", flush=True)


def table(stages: dict[str, Stage], wanted: list[str], faults: list[str], records: list[dict]) -> str:
    """Counts over the trials whose run was still going when its fault came."""
    lines = ["T (uninterrupted): " + ", ".join(f"{n} {stages[n].seconds:.1f} s" for n in wanted), "",
             "| stage | signal | tried | rerun identical | looked finished when not | left behind |",
             "| :-- | :-- | --: | --: | --: | --: |"]
    for name in wanted:
        for fault in [f for f in stages[name].faults if f in faults]:
            rows = [r for r in records if r["stage"] == name and r["signal"] == fault and r["signalled"]]
            lines.append(f"| {name} | {fault} | {len(rows)} | {sum(r['identical'] for r in rows)} | "
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
    parser.add_argument("--signals", nargs="+", choices=FAULTS, default=list(FAULTS),
                        help="a subset of the faults (each stage is given those of its own among them)")
    parser.add_argument("--with-quickstart", action="store_true", help="also the quickstart pipeline (minutes per run)")
    args = parser.parse_args()
    work = args.work.resolve()
    shutil.rmtree(work, ignore_errors=True)
    # Every run uses a copy of the working tree's src/ taken now: others may edit src/ during the
    # minutes this takes, and a reference and a rerun made by different code would not compare.
    src = shutil.copytree(ROOT / "src", work / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(src), os.environ.get("PYTHONPATH")) if p)
    sys.path.insert(0, str(src))
    stages = make_stages(work)
    wanted = [n for n in STAGES if n in (args.stages or DEFAULT + ("quickstart",) * args.with_quickstart)]
    references(stages, wanted, work)

    rng, records = random.Random(args.seed), []
    for name in wanted:
        stage = stages[name]
        for fault in [f for f in stage.faults if f in args.signals]:
            for i in range(args.trials):
                delay = rng.uniform(0.05 * stage.seconds, 0.95 * stage.seconds)
                slug = fault.replace(" ", "-")
                top = work / "trials" / name / f"{slug}-{i}"
                records.append(trial(stage, fault, delay, rng, work / "ref" / name, top, work / "logs" / name / f"{slug}-{i}"))
                r = records[-1]
                where = (f" in {r['running_stage']}" if r["running_stage"]
                         else f" to rank {r['rank']}" if r["rank"] is not None else "")
                if r["train_log_lines_at_signal"]:
                    where += f" ({r['train_log_lines_at_signal']} training log lines)"
                print(f"  {name} {fault} #{i}: at {r['signal_at_s']:.2f} s{where}, exit {r['exit_code']}, "
                      f"identical {r['identical']}, looked finished {r['looked_finished']}, "
                      f"left behind {r['survivors_after_10s'] + r['stray']}", flush=True)

    print("\n" + table(stages, wanted, args.signals, records))
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
