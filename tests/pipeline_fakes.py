"""Small fake stages with the subcommand interface, for the pipeline tests.

Each appends "NAME ARGV" to the file named by $FAKE_CALLS, so tests can see what ran.
FakeTokenize crashes half-way (output half written, no manifest) while $FAKE_CRASH names a
file that does not exist yet, and creates it: the first run "is killed", the rerun works.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from ja_pretrain.utils.manifest import file_sha256, write_manifest


def _record(name: str) -> None:
    calls = os.environ.get("FAKE_CALLS")
    if calls:
        with open(calls, "a", encoding="utf-8") as f:
            f.write(f"{name} {' '.join(sys.argv[2:])}\n")


class FakeCorpus:
    NAME = "fake-corpus"
    HELP = DESCRIPTION = "copy text files, keeping every Nth line"
    PIPELINE_OUTPUT = "out"
    PIPELINE_INPUTS = ("inputs",)

    @staticmethod
    def add_arguments(parser):
        parser.add_argument("inputs", nargs="+")
        parser.add_argument("--out", required=True)
        parser.add_argument("--every", type=int, default=1)

    @staticmethod
    def run(args):
        _record("fake-corpus")
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        lines = [line for path in args.inputs for line in Path(path).read_text(encoding="utf-8").splitlines()]
        (out / "text.txt").write_text("\n".join(lines[:: args.every]) + "\n", encoding="utf-8")
        print(f"fake-corpus: {len(lines[:: args.every])} lines")
        write_manifest(out, stage="fake-corpus", inputs={p: file_sha256(p) for p in args.inputs},
                       options={"every": args.every}, counts={"lines": len(lines[:: args.every])})
        return 0


class FakeTokenize:
    NAME = "fake-tokenize"
    HELP = DESCRIPTION = "count characters"
    PIPELINE_OUTPUT = "model_dir"
    PIPELINE_INPUTS = ("input_file",)

    @staticmethod
    def add_arguments(parser):
        parser.add_argument("--input_file", "--input-file", required=True)
        parser.add_argument("--model_dir", required=True)
        parser.add_argument("--vocab_size", type=int, default=100)
        parser.add_argument("--kind", choices=["wordpiece", "sentencepiece"], default="wordpiece")

    @staticmethod
    def run(args):
        _record("fake-tokenize")
        out = Path(args.model_dir)
        out.mkdir(parents=True, exist_ok=True)
        text = (Path(args.input_file) / "text.txt").read_text(encoding="utf-8")
        (out / "vocab.txt").write_text("\n".join(sorted(set(text)))[: args.vocab_size], encoding="utf-8")
        crash = os.environ.get("FAKE_CRASH")
        if crash and not Path(crash).exists():
            Path(crash).touch()
            raise RuntimeError("simulated crash half-way through the stage")
        print(f"fake-tokenize: vocab of {len(set(text))}")
        write_manifest(out, stage="fake-tokenize", inputs={"text": file_sha256(Path(args.input_file) / "text.txt")},
                       options={"vocab_size": args.vocab_size, "kind": args.kind}, counts={"chars": len(set(text))})
        return 0


class FakeTrain:
    """Checkpoints every step into MODEL_DIR/checkpoint-N; like run-pretraining it refuses a
    model dir with checkpoints unless --do_continue, which resumes from the latest. While
    $FAKE_CRASH_TRAIN names a missing file it creates it and crashes after step 2."""

    NAME = "fake-train"
    HELP = DESCRIPTION = "pretend to train"
    PIPELINE_OUTPUT = "model_dir"
    PIPELINE_INPUTS = ("input_file", "tokenizer_dir")
    PIPELINE_RESUME = ("--do_continue", "checkpoint-*")

    @staticmethod
    def add_arguments(parser):
        parser.add_argument("--input_file", required=True)
        parser.add_argument("--tokenizer_dir", required=True)
        parser.add_argument("--model_dir", required=True)
        parser.add_argument("--steps", type=int, default=3)
        parser.add_argument("--lr", type=float, default=0.1)
        parser.add_argument("--do_whole_word_mask", action="store_true")
        parser.add_argument("--do_continue", action="store_true")
        parser.add_argument("--sleep", type=float, default=0.0, help="seconds per step")
        parser.add_argument("--quiet", action="store_true", help="no line per step (as training with --no_progress)")

    @staticmethod
    def run(args):
        _record("fake-train")
        model_dir = Path(args.model_dir)
        done = sorted(int(p.name.split("-")[1]) for p in model_dir.glob("checkpoint-*"))
        if done and not args.do_continue:
            raise RuntimeError("model dir has checkpoints; pass --do_continue")
        first = done[-1] + 1 if done else 1
        crash = os.environ.get("FAKE_CRASH_TRAIN")
        model_dir.mkdir(parents=True, exist_ok=True)
        (model_dir / "pid").write_text(str(os.getpid()))
        for step in range(first, args.steps + 1):
            time.sleep(args.sleep)
            (model_dir / f"checkpoint-{step}").mkdir()
            if not args.quiet:
                print(f"\rstep {step}/{args.steps}", end="", file=sys.stderr)
            if crash and step == 2 and not Path(crash).exists():
                Path(crash).touch()
                raise RuntimeError("simulated kill during training")
        print(file=sys.stderr)
        print(f"fake-train: started at step {first}")
        out = model_dir / "final"
        out.mkdir(parents=True, exist_ok=True)
        (out / "weights.txt").write_text(str(args.steps * args.lr), encoding="utf-8")
        print(f"fake-train: {args.steps} steps")
        write_manifest(out, stage="fake-train", inputs={}, options={"steps": args.steps, "lr": args.lr,
                                                                    "wwm": args.do_whole_word_mask})
        return 0


# What tests pass as run_pipeline(registry=...): config files name the fakes like subcommands.
REGISTRY = {"fake-corpus": "pipeline_fakes:FakeCorpus", "fake-tokenize": "pipeline_fakes:FakeTokenize",
            "fake-train": "pipeline_fakes:FakeTrain"}


def cli_with_fakes(argv: list[str]) -> int:
    """`ja-pretrain ARGV` with the fakes registered as commands, for tests that run the CLI (also
    in a subprocess: `python -c "...; sys.exit(pipeline_fakes.cli_with_fakes(sys.argv[1:]))" ...`)."""
    import ja_pretrain.pipeline as pipeline
    from ja_pretrain.cli import main

    real = pipeline.command_registry
    pipeline.command_registry = lambda: {**real(), **REGISTRY}
    try:
        return main(argv)
    finally:
        pipeline.command_registry = real
