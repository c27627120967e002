"""One writer per output: a command aimed at an output another process is writing is refused,
naming the output and the process, and leaves that output alone."""

from __future__ import annotations

import socket
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
    assert f"{out}: ja-pretrain process {pid} on host {socket.gethostname()} is writing it now" in err
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


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_worker_processes_die_with_a_killed_parent(tmp_path):
    """The builders' pools start their workers with die_with_parent: kill -9 of the command
    must not leave them running (they held ~90 MB each, a minute later, before)."""
    import os
    import signal
    import time

    script = tmp_path / "pool.py"
    script.write_text(textwrap.dedent("""
        import multiprocessing, os, sys, time
        from concurrent.futures import ProcessPoolExecutor
        from ja_pretrain.utils.processes import die_with_parent

        def pid(_):
            time.sleep(0.3)
            return os.getpid()

        if __name__ == "__main__":
            with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"),
                                     initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
                print(" ".join(map(str, set(pool.map(pid, range(4))))), flush=True)
                time.sleep(60)
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    workers = [int(p) for p in proc.stdout.readline().split()]
    assert workers and all(os.path.exists(f"/proc/{p}") for p in workers)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    def alive(pid):
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().split(")")[-1].split()[0] != "Z"  # a zombie has exited
        except FileNotFoundError:
            return False

    deadline = time.monotonic() + 10
    while any(alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(p) for p in workers)
