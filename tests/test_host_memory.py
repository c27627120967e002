"""The malloc settings for CPU training: freed step memory is reused, not faulted in anew."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ja_pretrain.training import host_memory


def _huge_pages_always() -> bool:
    try:
        return "[always]" in Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return False


# The test counts 4 KiB page faults of glibc's default behaviour, which the environment can change.
glibc_only = pytest.mark.skipif(
    not host_memory.malloc_tunable() or _huge_pages_always()
    or any(name in os.environ for name in ("GLIBC_TUNABLES", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")),
    reason="needs glibc with its default malloc settings and 4 KiB pages",
)

# Allocates, touches and frees a 64 MiB block with malloc (larger than glibc's largest automatic
# mmap threshold) a few times; prints the page faults per round after the first.
FAULTS_PER_ROUND = """
import ctypes, resource, sys
from ja_pretrain.training.host_memory import keep_freed_memory
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
SIZE = 64 << 20
if sys.argv[1] == "keep" and keep_freed_memory() < SIZE:
    print("capped")
    sys.exit(0)
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
    if out.stdout.strip() == "capped":
        pytest.skip("this glibc caps the mmap threshold below the test's 64 MiB block")
    return int(out.stdout.strip())


@glibc_only
def test_kept_memory_is_reused_without_page_faults():
    pages = (64 << 20) // 4096
    # glibc's defaults: the buffer is unmapped when freed, and each round faults its pages in again
    assert faults_per_round("default") > pages // 2
    assert faults_per_round("keep") < pages // 20


def test_the_trainer_keeps_memory_on_a_cpu_unless_told_not_to(tiny, tmp_path, monkeypatch):
    from ja_pretrain.training import trainer

    from training_support import pretrain_cli

    calls = []
    monkeypatch.setattr(trainer, "keep_freed_memory", lambda: calls.append(1) or 1 << 30)
    steps = ("--model_type", "bert-micro", "--train_steps", "1", "--save_steps", "1")
    assert pretrain_cli(tiny, tmp_path / "kept", *steps) == 0
    assert calls == [1]
    assert pretrain_cli(tiny, tmp_path / "system", *steps, "--system_malloc") == 0
    assert calls == [1]
