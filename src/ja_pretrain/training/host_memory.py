"""Keep freed host memory in the process while training on a CPU.

A CPU training step allocates and frees the same large tensors every step (activations,
gradients, logits: up to tens of MB each). glibc's malloc serves blocks above its mmap threshold
(at most 32 MB, adjusted on the fly) with fresh `mmap`s and gives them back with `munmap`, and it
returns the top of the heap to the system past its trim threshold. Each step then touches those
pages anew and takes a page fault per 4 KiB page: with bert-small in fp32 about 80,000 faults
and a few percent of the step. Raising both thresholds makes malloc keep and reuse the memory,
so the process holds its peak step memory throughout, which a training run does anyway.
"""

from __future__ import annotations

import ctypes
import logging
import sys

log = logging.getLogger(__name__)

# mallopt parameter numbers from glibc's malloc.h
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Blocks up to 1 GiB come from the reusable heap. Older glibc caps the threshold at 32 MiB on
# 64-bit and refuses more, hence the fallback.
_MMAP_THRESHOLDS = (1 << 30, 32 << 20)
_NEVER_TRIM = (1 << 31) - 1  # mallopt takes an int


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    # only glibc has gnu_get_libc_version; musl's mallopt accepts the call and does nothing
    return libc if hasattr(libc, "gnu_get_libc_version") else None


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to reuse freed memory rather than unmap it; True if it took effect.
    Does nothing (False) outside Linux with glibc."""
    libc = _glibc()
    if libc is None:
        return False
    if not any(libc.mallopt(_M_MMAP_THRESHOLD, size) == 1 for size in _MMAP_THRESHOLDS):
        return False
    if libc.mallopt(_M_TRIM_THRESHOLD, _NEVER_TRIM) != 1:
        return False
    log.debug("malloc keeps freed memory for reuse (mmap and trim thresholds raised)")
    return True
