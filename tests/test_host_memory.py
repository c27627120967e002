"""The malloc settings for CPU training: freed step memory is reused, not faulted in anew."""

import subprocess
import sys

import pytest

from ja_pretrain.training import host_memory

glibc_only = pytest.mark.skipif(host_memory._glibc() is None, reason="mallopt is a glibc feature")

# Allocates, touches and frees a 64 MiB block with malloc (larger than glibc's largest automatic
# mmap threshold) a few times; prints the page faults per round after the first.
FAULTS_PER_ROUND = """
import ctypes, resource, sys
from ja_pretrain.training.host_memory import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
SIZE = 64 << 20
def touch():
    block = libc.malloc(SIZE)
    ctypes.memset(block, 1, SIZE)
    libc.free(block)
touch()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(3):
    touch()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 3)
"""


def faults_per_round(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", FAULTS_PER_ROUND, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


@glibc_only
def test_kept_memory_is_reused_without_page_faults():
    pages = (64 << 20) // 4096
    # glibc's defaults: the buffer is unmapped when freed, and each round faults its pages in again
    assert faults_per_round("default") > pages // 2
    assert faults_per_round("keep") < pages // 20


def test_the_trainer_keeps_memory_on_a_cpu_unless_told_not_to(tiny, tmp_path, monkeypatch):
    from training_support import pretrain_cli

    from ja_pretrain.training import trainer

    calls = []
    monkeypatch.setattr(trainer, "keep_freed_memory", lambda: calls.append(1) or True)
    steps = ("--model_type", "bert-micro", "--train_steps", "1", "--save_steps", "1")
    assert pretrain_cli(tiny, tmp_path / "kept", *steps) == 0
    assert calls == [1]
    assert pretrain_cli(tiny, tmp_path / "system", *steps, "--system_malloc") == 0
    assert calls == [1]
