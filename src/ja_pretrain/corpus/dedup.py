"""Exact sentence de-duplication in a fixed amount of memory.

Each sentence is represented by an 8-byte BLAKE2b digest. Digests live in a preallocated
table of 4-slot buckets (`memory_mb` MiB, so memory_mb * 131072 digests); a digest goes to
bucket `digest mod buckets`. A new digest is put first in its bucket and the bucket's oldest
entry falls out.

The same table holds the LSH band keys of near-duplicate detection (neardup.py), through `seen`
and `insert`: a document's keys are looked up first and recorded only if it is kept.

Trade-off, chosen on purpose over an exact set (Python sets cost ~60 bytes per entry and grow
without bound) and over a Bloom filter (which would drop *unseen* sentences as false
positives):
- a sentence is never dropped unless an identical one was seen (a different sentence is
  dropped only on a 64-bit digest collision: probability about n^2 / 2^65, ~3e-4 for 10^8
  distinct sentences);
- while the number of distinct sentences stays well below capacity, nearly every duplicate
  is caught; beyond it, entries of crowded buckets are forgotten and an old sentence can come
  back once. `evictions` counts forgotten entries, and the manifest reports it, so a user can
  see when to raise `--dedup-memory-mb`.
"""

from __future__ import annotations

import mmap

WAYS = 4
SLOT = 8
_EMPTY = bytes(SLOT)


class SentenceDeduplicator:
    def __init__(self, memory_mb: float):
        self.buckets = max(1, int(memory_mb * (1 << 20)) // (WAYS * SLOT))
        # An anonymous mapping: the OS hands out zero pages as they are first touched, so a
        # small corpus does not pay for (or hold) the whole table.
        self.table = mmap.mmap(-1, self.buckets * WAYS * SLOT)
        if hasattr(mmap, "MADV_HUGEPAGE"):  # random access over the table: fewer TLB misses
            self.table.madvise(mmap.MADV_HUGEPAGE)
        self.evictions = 0

    @property
    def capacity(self) -> int:
        return self.buckets * WAYS

    def _bucket(self, digest: bytes) -> tuple[int, bytes, bytes]:
        if digest == _EMPTY:
            digest = b"\x01" + _EMPTY[1:]
        start = (int.from_bytes(digest, "little") % self.buckets) * WAYS * SLOT
        return start, digest, self.table[start : start + WAYS * SLOT]

    def seen(self, digest: bytes) -> bool:
        """Whether `digest` is in the table (nothing is recorded)."""
        _, digest, bucket = self._bucket(digest)
        found = bucket.find(digest)
        while found != -1:
            if found % SLOT == 0:
                return True
            found = bucket.find(digest, found + 1)
        return False

    def insert(self, digest: bytes) -> None:
        """Record `digest` (the caller knows it is not in the table)."""
        start, digest, bucket = self._bucket(digest)
        if bucket[-SLOT:] != _EMPTY:
            self.evictions += 1
        self.table[start : start + WAYS * SLOT] = digest + bucket[:-SLOT]

    def add(self, digest: bytes) -> bool:
        """Record `digest`; True if it was not seen before (the sentence is kept)."""
        if digest == _EMPTY:  # the empty-slot marker; shift it to a valid digest
            digest = b"\x01" + _EMPTY[1:]
        start = (int.from_bytes(digest, "little") % self.buckets) * WAYS * SLOT
        end = start + WAYS * SLOT
        bucket = self.table[start:end]  # one random memory access; the rest works on the copy
        found = bucket.find(digest)
        while found != -1:
            if found % SLOT == 0:
                return False
            found = bucket.find(digest, found + 1)
        if bucket[-SLOT:] != _EMPTY:
            self.evictions += 1
        self.table[start:end] = digest + bucket[:-SLOT]
        return True
