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


def _children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (from /proc)."""
    import os

    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[-1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


@pytest.fixture(scope="module")
def big_corpus(tmp_path_factory):
    """The bundled sample 40 times over, cleaned once: enough work to keep a pool busy a while."""
    root = tmp_path_factory.mktemp("big")
    text = sample_corpus_path().read_text(encoding="utf-8").strip("\n")
    raw = root / "raw.txt"
    raw.write_text("\n\n".join(text.replace("。", f"。{i}") for i in range(40)) + "\n", encoding="utf-8")
    assert main(["corpus", str(raw), "--out", str(root / "corpus"), "--no_progress"]) == 0
    assert main(["train-tokenizer", "--input_file", str(root / "corpus"), "--model_dir", str(root / "tok"),
                 "--vocab_size", "800", "--min_frequency", "1", "--limit_alphabet", "400"]) == 0
    return root


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
@pytest.mark.parametrize("builder", ["corpus", "build-dataset"])
def test_builders_workers_die_with_a_killed_command(tmp_path, big_corpus, builder):
    """The corpus and dataset builders' own worker pools: kill -9 of the command while its
    workers run must not leave them running (they held ~90 MB each, a minute later, before)."""
    import os
    import signal
    import time

    argv = {"corpus": ["corpus", str(big_corpus / "raw.txt"), "--out", str(tmp_path / "out"), "--workers", "2",
                       "--no_progress"],
            "build-dataset": ["build-dataset", "--corpus", str(big_corpus / "corpus"), "--tokenizer",
                              str(big_corpus / "tok"), "--out", str(tmp_path / "out"), "--workers", "2",
                              "--sequence_length", "64", "--no_progress"]}[builder]
    proc = subprocess.Popen([sys.executable, "-m", "ja_pretrain", *argv], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    workers: list[int] = []
    deadline = time.monotonic() + 120
    while len(workers) < 2 and proc.poll() is None and time.monotonic() < deadline:
        workers = [p for p in _children(proc.pid) if "multiprocessing" in open(f"/proc/{p}/cmdline").read()
                   or builder == "corpus"]
        time.sleep(0.02)
    assert len(workers) >= 2, "the command finished before its workers could be seen; give it more work"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in workers)
