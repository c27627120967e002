"""Exact sentence de-duplication in a fixed amount of memory.

Each sentence is represented by an 8-byte BLAKE2b digest. Digests live in a preallocated
table of 4-slot buckets (`memory_mb` MiB, so memory_mb * 131072 digests); a digest goes to
bucket `digest mod buckets`. A new digest is put first in its bucket and the bucket's oldest
entry falls out.

The same table holds the LSH band keys of near-duplicate detection (neardup.py), through
`add_group`, which takes a document's keys at once as a numpy array over the same memory: they
are recorded only if none of them was there (the document is kept).

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

import numpy as np

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
        # the same memory as 64-bit slots (a digest's 8 bytes read little-endian), for numpy
        self.slots = np.frombuffer(self.table, dtype="<u8").reshape(self.buckets, WAYS)
        self.evictions = 0

    @property
    def capacity(self) -> int:
        return self.buckets * WAYS

    def add_group(self, digests: np.ndarray) -> bool:
        """Record a group of digests (uint64: a digest's bytes read little-endian) unless one of
        them is in the table already; True if they were recorded (the group is new)."""
        digests = np.where(digests == 0, 1, digests)  # the empty-slot marker, moved as in `add`
        rows = (digests % np.uint64(self.buckets)).astype(np.intp)
        buckets = self.slots[rows]
        if (buckets == digests[:, None]).any():
            return False
        if len(set(rows.tolist())) < len(rows):  # two in one bucket: one after the other, as `add` would
            for k in range(len(rows)):
                self._push(digests[k : k + 1], rows[k : k + 1], self.slots[rows[k : k + 1]])
        else:
            self._push(digests, rows, buckets)
        return True

    def _push(self, digests: np.ndarray, rows: np.ndarray, buckets: np.ndarray) -> None:
        self.evictions += int(np.count_nonzero(buckets[:, -1]))
        buckets[:, 1:] = buckets[:, :-1].copy()
        buckets[:, 0] = digests
        self.slots[rows] = buckets

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
