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
# Blocks up to 1 GiB come from the reusable heap. Some glibc versions cap the threshold at
# 32 MiB on 64-bit and refuse more, hence the fallback.
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


def malloc_tunable() -> bool:
    """True where `keep_freed_memory` can act: Linux with glibc."""
    return _glibc() is not None


def keep_freed_memory() -> int:
    """Tell glibc's malloc to reuse freed memory rather than unmap it. Returns the mmap threshold
    now in force: blocks up to it are reused (1 GiB; 32 MiB on an older glibc, which refuses more),
    or 0 where nothing took effect (not Linux with glibc)."""
    libc = _glibc()
    if libc is None:
        return 0
    threshold = next((size for size in _MMAP_THRESHOLDS if libc.mallopt(_M_MMAP_THRESHOLD, size) == 1), 0)
    if not threshold or libc.mallopt(_M_TRIM_THRESHOLD, _NEVER_TRIM) != 1:
        return 0
    if threshold < _MMAP_THRESHOLDS[0]:
        log.info("this glibc caps malloc's mmap threshold at %d MiB: larger tensors are still unmapped when freed",
                 threshold >> 20)
    log.debug("malloc keeps freed blocks up to %d MiB for reuse", threshold >> 20)
    return threshold
