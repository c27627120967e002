"""Run the planned stages in order, skipping those that are up to date.

A stage is up to date when RUN_DIR/.pipeline/STAGE.json records (a) the stage fingerprint we
compute now and (b) the signature of its output dir's manifests as they are on disk now. The
stage fingerprint covers the command line, the inputs given as paths (content hash for small
files, size and time for big ones, manifests for dirs), and every upstream stage's fingerprint
and output signature, so a changed option reruns that stage and everything downstream of it.

The record is removed before a stage starts and written only after it exits 0 with its output
in place: a run killed mid-stage reruns that stage (whose own atomic writes left nothing that
looks finished) and goes on from there.

Each stage runs in a child process (`python -m ja_pretrain.pipeline.child`), its output shown
live and kept in RUN_DIR/logs/STAGE.log.
"""

from __future__ import annotations

import codecs
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ja_pretrain.errors import UserError
from ja_pretrain.pipeline.stages import StagePlan, expand_globs
from ja_pretrain.utils.atomic import atomic_write_json
from ja_pretrain.utils.manifest import file_sha256, fingerprint, read_manifest
from ja_pretrain.utils.processes import PARENT_PID_ENV, with_parent

STATE_DIR = ".pipeline"
HASH_LIMIT = 64 << 20  # files up to this size are hashed; bigger ones are known by size and time


@dataclass
class StageResult:
    name: str
    status: str  # "ran", "skipped: up to date", "failed"
    seconds: float
    summary: str = ""


def path_signature(path: Path) -> Any:
    """What identifies an input given as a path."""
    if path.is_file():
        stat = path.stat()
        if stat.st_size <= HASH_LIMIT:
            return {"sha256": file_sha256(path)}
        return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if path.is_dir():
        return output_signature(path) or listing_signature(path)
    return None


def _manifest_dirs(out: Path) -> list[Path]:
    found = [out] if (out / "manifest.json").is_file() else []
    if out.is_dir():
        for child in sorted(out.iterdir()):
            if child.is_dir() and not child.name.startswith((".", "checkpoint-")) and (child / "manifest.json").is_file():
                found.append(child)
    return found


def output_signature(out: Path) -> str | None:
    """Fingerprint of the manifests in `out` and its direct subdirs; None when there are none."""
    entries = []
    for directory in _manifest_dirs(out):
        manifest = read_manifest(directory)
        entries.append([str(directory.relative_to(out)), manifest.get("fingerprint") if manifest else None])
    return fingerprint(entries) if entries else None


def listing_signature(out: Path) -> str | None:
    """For outputs without a manifest: names and sizes of the files (hidden ones left out)."""
    if not out.exists():
        return None
    files = sorted(p for p in out.rglob("*")
                   if p.is_file() and not any(part.startswith(".") for part in p.relative_to(out).parts))
    return fingerprint([[str(p.relative_to(out)), p.stat().st_size] for p in files]) if files else None


# Commands that end by writing manifest.json in their output (or, for training, in final/).
MANIFEST_COMMANDS = frozenset({"corpus", "train-tokenizer", "build-dataset", "run-pretraining", "extract-electra",
                               "evaluate", "report"})


def stage_output_signature(out: Path) -> str | None:
    return output_signature(out) or listing_signature(out)


class PipelineRunner:
    def __init__(self, run_dir: Path, plans: list[StagePlan], *, echo: bool = True, stream: TextIO | None = None):
        self.run_dir = run_dir
        self.plans = plans
        self.echo = echo
        self.stream = stream or sys.stderr
        self.fingerprints: dict[str, str] = {}

    # -- bookkeeping -----------------------------------------------------------------------
    def state_path(self, name: str) -> Path:
        return self.run_dir / STATE_DIR / f"{name}.json"

    def log_path(self, name: str) -> Path:
        return self.run_dir / "logs" / f"{name}.log"

    def read_state(self, name: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.state_path(name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def stage_fingerprint(self, plan: StagePlan) -> str:
        upstream = {u: [self.fingerprints.get(u), stage_output_signature(self.plan(u).out)] for u in plan.upstream}
        external = {}
        for word in plan.argv:
            if word.startswith("-"):
                continue
            # A pattern (a user's *.txt) is signed by what it matches now, so added, removed or
            # edited files rerun the stage.
            paths = [Path(m) for m in sorted(glob.glob(word))] if any(c in word for c in "*?[") else [Path(word)]
            for path in paths:
                if not path.exists():
                    continue
                # Its own output (or a dir holding it, as a report's RUN_DIR) and upstream outputs
                # are covered by the output and upstream signatures.
                if _inside(path, plan.out) or _inside(plan.out, path):
                    continue
                if any(_inside(path, self.plan(u).out) for u in plan.upstream):
                    continue
                external[str(path)] = path_signature(path)
        # The launcher is left out: the same training on 8 GPUs or on 1 gives the same model.
        return fingerprint({"command": plan.command, "spec": plan.spec, "argv": plan.argv, "upstream": upstream,
                            "external": external})

    def plan(self, name: str) -> StagePlan:
        return next(p for p in self.plans if p.name == name)

    def is_up_to_date(self, plan: StagePlan, fp: str) -> bool:
        state = self.read_state(plan.name)
        if not state or state.get("fingerprint") != fp:
            return False
        current = stage_output_signature(plan.out)
        return current is not None and state.get("output") == current

    # -- running ---------------------------------------------------------------------------
    def run(self, *, only: str | None = None, start: str | None = None, force: bool = False) -> list[StageResult]:
        names = [p.name for p in self.plans]
        for option, value in (("--stage", only), ("--from", start)):
            if value is not None and value not in names:
                raise UserError(f"{option} {value!r}: no such stage; stages: {', '.join(names)}")
        forced_from = names.index(start) if start else None
        results = []
        total = len(self.plans)
        for index, plan in enumerate(self.plans):
            fp = self.stage_fingerprint(plan)
            self.fingerprints[plan.name] = fp
            if only is not None and plan.name != only:
                if plan.name in self.plan(only).upstream and not self.is_up_to_date(plan, fp):
                    raise UserError(f"--stage {only}: it needs stage {plan.name!r}, which is not up to date; "
                                    f"run the pipeline without --stage (or with --from {plan.name})")
                continue
            must_run = force or (forced_from is not None and index >= forced_from)
            if forced_from is not None and index < forced_from and not self.is_up_to_date(plan, fp):
                raise UserError(f"--from {start}: stage {plan.name!r} before it is not up to date; "
                                f"rerun with --from {plan.name} or without --from")
            if not must_run and self.is_up_to_date(plan, fp):
                self._say(f"[{index + 1}/{total}] {plan.name}: skipped: up to date")
                results.append(StageResult(plan.name, "skipped: up to date", 0.0))
                continue
            if forced_from is not None and index < forced_from:
                continue
            results.append(self._run_stage(plan, fp, index, total))
        return results

    def _prepare_resume(self, plan: StagePlan, fp: str, finished: bool, index: int, total: int) -> list[str]:
        """The argv to run now: with the resume flag when an interrupted run of the same stage (or
        a run the pipeline did not start) left checkpoints; after removing them when the pipeline
        trained them with other options, or finished them and is forced to run again."""
        if plan.resume is None or not plan.out.is_dir():
            return plan.argv
        flag, pattern = plan.resume
        if not any(plan.out.glob(pattern)):
            return plan.argv
        started_path = self.state_path(plan.name).with_suffix(".started.json")
        try:
            started = json.loads(started_path.read_text(encoding="utf-8")).get("fingerprint")
        except (OSError, ValueError):
            started = None
        if started is None or (started == fp and not finished):
            # Interrupted here, or trained by hand into this dir (e.g. multi-node torchrun): go on.
            self._say(f"[{index + 1}/{total}] {plan.name}: resuming from the checkpoints in {plan.out}")
            return plan.argv if flag in plan.argv else [*plan.argv, flag]
        why = "to run it again" if started == fp else "trained with other options"
        self._say(f"[{index + 1}/{total}] {plan.name}: removing {plan.out}, {why}")
        shutil.rmtree(plan.out)
        return plan.argv

    def _run_stage(self, plan: StagePlan, fp: str, index: int, total: int) -> StageResult:
        finished = (self.read_state(plan.name) or {}).get("fingerprint") == fp
        self.state_path(plan.name).unlink(missing_ok=True)
        argv = self._prepare_resume(plan, fp, finished, index, total)
        atomic_write_json(self.state_path(plan.name).with_suffix(".started.json"), {"fingerprint": fp})
        self._say(f"[{index + 1}/{total}] {plan.name}: ja-pretrain {plan.command} {' '.join(argv)}")
        started = time.time()
        code, last_line = self._execute(plan, argv)
        seconds = time.time() - started
        if code != 0:
            how = f"killed by signal {-code}" if code < 0 else f"exit {code}"
            self._say(f"[{index + 1}/{total}] {plan.name}: FAILED ({how}) after {seconds:.1f}s; "
                      f"log: {self.log_path(plan.name)}")
            said = "" if code < 0 else f": {last_line or 'no output'}"
            raise UserError(f"stage {plan.name!r} failed ({how}){said}; log: {self.log_path(plan.name)}. "
                            "Rerun to go on: finished stages are skipped, an interrupted training resumes")
        output = stage_output_signature(plan.out)
        if output is None:
            raise UserError(f"stage {plan.name!r} exited 0 but wrote nothing to {plan.out}; log: {self.log_path(plan.name)}")
        if plan.command in MANIFEST_COMMANDS and output_signature(plan.out) is None:
            # e.g. run-pretraining --stop_after_steps: checkpoints but no final/ yet
            raise UserError(f"stage {plan.name!r} exited 0 but left no manifest.json in {plan.out}: it did not "
                            f"finish its work (a --stop_after_steps option?); log: {self.log_path(plan.name)}")
        atomic_write_json(self.state_path(plan.name), {
            "stage": plan.name, "command": plan.command, "argv": plan.argv, "fingerprint": fp, "output": output,
            "seconds": round(seconds, 3), "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        })
        self._say(f"[{index + 1}/{total}] {plan.name}: done in {seconds:.1f}s; log: {self.log_path(plan.name)}")
        return StageResult(plan.name, "ran", seconds, last_line)

    def _execute(self, plan: StagePlan, argv: list[str]) -> tuple[int, str]:
        """Run the stage in a child process; echo its output and keep it in the stage log."""
        log = self.log_path(plan.name)
        log.parent.mkdir(parents=True, exist_ok=True)
        if log.exists():  # keep the last attempt's log (e.g. the one that was killed) beside the new one
            os.replace(log, log.with_suffix(".previous.log"))
        stage = ["-m", "ja_pretrain.pipeline.child", plan.spec, *expand_globs(argv)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop(PARENT_PID_ENV, None)  # (a pipeline run by a stage of another pipeline)
        if plan.launch:
            cmd = with_parent(os.getpid(), [*plan.launch, *stage])
        else:
            cmd = [sys.executable, *stage]
            env[PARENT_PID_ENV] = str(os.getpid())
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        last_line = ""
        with open(log, "w", encoding="utf-8") as f:
            f.write(f"$ ja-pretrain {plan.command} {' '.join(argv)}\n")
            # A session of its own: a Ctrl-C at the terminal reaches the pipeline alone, which
            # stops the stage with one SIGINT (two would cut its checkpoint short).
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True)
            pending = ""
            try:
                while chunk := proc.stdout.read1(1 << 16):
                    text = decoder.decode(chunk)
                    if self.echo:
                        self.stream.write(text)
                        self.stream.flush()
                    pending += text
                    *lines, pending = pending.split("\n")
                    for line in lines:
                        # Keep only the last state of a progress bar redrawn with \r.
                        line = line.rstrip("\r").rsplit("\r", 1)[-1]
                        f.write(line + "\n")
                        if line.strip():
                            last_line = line.strip()
                code = proc.wait()
            except BaseException:
                _stop(proc, launched=bool(plan.launch))
                f.write("\n[pipeline: interrupted]\n")
                raise
            if pending.strip():
                f.write(pending.rsplit("\r", 1)[-1] + "\n")
                last_line = pending.rsplit("\r", 1)[-1].strip()
            f.write(f"[pipeline: exit {code}]\n")
        return code, last_line

    def _say(self, text: str) -> None:
        self.stream.write(f"pipeline: {text}\n")
        self.stream.flush()


def _inside(path: Path, parent: Path) -> bool:
    try:
        path.resolve().relative_to(parent.resolve())
        return True
    except ValueError:
        return False


def _stop(proc: subprocess.Popen, launched: bool = False) -> None:
    """Stop a stage: one polite signal (it writes nothing half-done; training checkpoints), then
    harder. A launcher gets SIGTERM, which torchrun, srun and uv all pass on to their workers
    (srun takes a single SIGINT as a request for its status)."""
    first = signal.SIGTERM if launched else signal.SIGINT
    for send, patience in ((first, 60 if launched else 30), (signal.SIGTERM, 10), (signal.SIGKILL, None)):
        if proc.poll() is not None:
            return
        proc.send_signal(send)
        try:
            proc.wait(timeout=patience)
        except subprocess.TimeoutExpired:
            continue
