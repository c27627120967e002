"""One writer per output: a command aimed at an output another process is writing is refused,
naming the output and the process, and leaves that output alone."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from ja_pretrain.cli import main
from ja_pretrain.resources import sample_corpus_path

pytest.importorskip("fcntl")


@pytest.fixture
def holder():
    """Hold the lock of an output from another process, as a running command would."""
    procs = []

    def hold(target):
        code = textwrap.dedent(f"""
            import sys, time
            from ja_pretrain.utils.locks import exclusive
            with exclusive({str(target)!r}, "test"):
                print("held", flush=True)
                time.sleep(60)
        """)
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "held"
        procs.append(proc)
        return proc.pid

    yield hold
    for proc in procs:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("argv", [
    lambda out: ["corpus", str(sample_corpus_path()), "--out", str(out), "--no_progress"],
    lambda out: ["train-tokenizer", "--input_file", str(sample_corpus_path()), "--model_dir", str(out)],
    lambda out: ["finetune", str(out.parent), "--task", "smoke", "--out", str(out)],
    lambda out: ["report", str(out.parent), "--out", str(out)],
])
def test_a_second_writer_is_refused(tmp_path, holder, capsys, argv):
    out = tmp_path / "out"
    pid = holder(out)
    assert main(argv(out)) == 2
    err = capsys.readouterr().err
    assert f"{out}: ja-pretrain process {pid} is writing it now" in err
    assert not out.exists()


def test_the_lock_goes_with_its_holder(tmp_path, holder, capsys):
    out = tmp_path / "corpus"
    pid = holder(out)
    import os
    import signal

    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    assert main(["corpus", str(sample_corpus_path()), "--out", str(out), "--no_progress"]) == 0
    assert (out / "manifest.json").is_file()
