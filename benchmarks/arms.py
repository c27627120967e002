"""Benchmark arms, each timed in fresh processes of its own, in alternating blocks.

An arm is one trainer being timed (the baseline, ours, ours with a feature off...). A block
starts a spawned child process for one arm, runs --warmup untimed and --steps timed optimizer
steps in it, and ends the process; the arms' blocks alternate (A B C, then B C A, ...) for
several repeats, and each repeat's ratios compare blocks run minutes apart at most.

Why a process per block, and one at a time: each arm then runs as a user runs it, alone, with
its own malloc state and settings (ours keeps freed memory, `training/host_memory.py`; the
baseline runs with glibc's defaults), and no other arm's memory is held meanwhile. On this
kind of virtual machine a page fault is expensive and its cost depends on what other processes
hold: a transformers Trainer baseline, which faults in its 512 MB of logits every step, ran
at 7.6-8.9 CPU seconds a step alone but 10-14 s beside three idle processes that kept their
memory (measured while writing this), so interleaving live arms would distort the comparison.

A child's target is `target(control, **kwargs)`: it builds its trainer, calls `control.ready()`,
then runs a step and `control.report(times)` for as long as `control.next()` says so, and last
sends `control.final(...)`: anything else the parent wants (FLOPs per step). Trainers that own
their loop (a transformers `Trainer`) do the same from a callback: `step_on_command`. A child
times its own steps: wall time and its own CPU time.
"""

from __future__ import annotations

import multiprocessing
import signal
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import torch


def clocks() -> tuple[float, float]:
    """(wall, this process's CPU time)."""
    return time.perf_counter(), time.process_time()


def elapsed(start: tuple[float, float]) -> tuple[float, float]:
    wall, cpu = clocks()
    return wall - start[0], cpu - start[1]


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class Control:
    """The child's end of the pipe."""

    def __init__(self, conn):
        self.conn = conn

    def ready(self) -> None:
        self.conn.send(("ready", None))

    def next(self) -> bool:
        """Wait for the parent: True to run one more step, False to stop."""
        return self.conn.recv() == "step"

    def report(self, times: tuple[float, float]) -> None:
        """One step's (wall, CPU) seconds."""
        self.conn.send(("step", times))

    def final(self, value: Any) -> None:
        """The last message, after the parent said stop: anything it wants (FLOPs per step)."""
        self.conn.send(("final", value))


def _exit_on_terminate(signum, frame) -> None:
    sys.exit(128 + signum)  # unwinds the target's with-blocks: its temporary directories go


def _child(conn, threads: int | None, target: Callable[..., None], kwargs: dict) -> None:
    signal.signal(signal.SIGTERM, _exit_on_terminate)
    if threads:
        torch.set_num_threads(threads)
    try:
        target(Control(conn), **kwargs)
    except SystemExit:  # the parent stopped it
        raise
    except BaseException:  # the parent raises it with the child's traceback
        conn.send(("error", traceback.format_exc()))


class Arm:
    """The parent's handle on one arm's process; `times` collects its (wall, CPU) step times."""

    def __init__(self, name: str, target: Callable[..., None], threads: int | None = None, **kwargs: Any):
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited heap or threads
        self.name = name
        self.conn, child_end = context.Pipe()
        self.process = context.Process(target=_child, args=(child_end, threads, target, kwargs), daemon=True)
        self.process.start()
        child_end.close()
        self.times: list[tuple[float, float]] = []

    def _receive(self, expected: str) -> Any:
        while not self.conn.poll(1.0):
            # (a child may send its last message and exit between the poll and this check)
            if not self.process.is_alive() and not self.conn.poll(0):
                raise RuntimeError(f"benchmark arm {self.name!r} died (exit code {self.process.exitcode})")
        kind, value = self.conn.recv()
        if kind == "error":
            raise RuntimeError(f"benchmark arm {self.name!r} failed:\n{value}")
        if kind != expected:
            raise RuntimeError(f"benchmark arm {self.name!r} sent {kind!r} where {expected!r} was due "
                               "(does its trainer stop at the number of steps the parent asks for?)")
        return value

    def ready(self) -> None:
        self._receive("ready")

    def step(self) -> None:
        self.conn.send("step")
        self.times.append(self._receive("step"))

    def finish(self) -> Any:
        self.conn.send("stop")
        value = self._receive("final")
        self.process.join(timeout=60)
        return value

    def kill(self) -> None:
        """Stop the child if it still runs: SIGTERM first, so it can clean up, then SIGKILL."""
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(timeout=30)  # a step in progress finishes before the exit runs
        if self.process.is_alive():
            self.process.kill()


def run_blocks(arms: list[tuple[str, Callable[..., None], dict]], repeats: int, warmup: int, steps: int,
               threads: int | None = None, progress: Callable[[str], None] | None = None) -> tuple[dict, dict]:
    """`repeats` rounds of one block per arm, the first arm rotating each round. `arms` holds
    (name, target, kwargs). Returns ({name: [per repeat: [timed (wall, CPU) steps]]},
    {name: its last block's final report})."""
    times: dict[str, list] = {name: [] for name, _, _ in arms}
    finals: dict[str, Any] = {}
    for round_ in range(repeats):
        first = round_ % len(arms)
        for name, target, kwargs in arms[first:] + arms[:first]:
            arm = Arm(name, target, threads, **kwargs)
            try:
                arm.ready()
                for _ in range(warmup + steps):
                    arm.step()
                finals[name] = arm.finish()
            finally:
                arm.kill()
            times[name].append(arm.times[warmup:])
            if progress:
                progress(f"repeat {round_ + 1}/{repeats} {name}: steps (wall, CPU s) "
                         f"{[tuple(round(x, 2) for x in t) for t in arm.times[warmup:]]}")
    return times, finals


def serve_steps(control: Control, step: Callable[[], None]) -> None:
    """The loop of a child whose trainer we step ourselves: time `step()` on each command."""
    control.ready()
    while control.next():
        start = clocks()
        step()
        sync()
        control.report(elapsed(start))


def step_on_command(control: Control):
    """A transformers TrainerCallback that runs the Trainer's steps on the parent's commands: it
    waits before the first step and after each, and a step is timed from the command to the
    end of the step (so the Trainer's data loading and collation count)."""
    from transformers import TrainerCallback

    class StepOnCommand(TrainerCallback):
        mark = None

        def _wait(self, control_flow) -> None:
            if control.next():
                self.mark = clocks()
            else:
                control_flow.should_training_stop = True

        def on_train_begin(self, args, state, control_flow, **kwargs):
            control.ready()
            self._wait(control_flow)

        def on_step_end(self, args, state, control_flow, **kwargs):
            sync()
            control.report(elapsed(self.mark))
            self._wait(control_flow)

    return StepOnCommand()
