"""A few of the documents each filter removed, written beside the corpus so that a user can look
at what a threshold costs: OUT/removed/REASON.txt.

Which documents: per reason, the SAMPLES_PER_REASON whose hash of (seed, document index) is
smallest. That is an even draw over the whole run, held in bounded memory, and the same for any
number of workers or machines (the merge of parts offers the same documents and keeps the same
ones).
"""

from __future__ import annotations

import hashlib
import heapq
from pathlib import Path

SAMPLES_PER_REASON = 20
DIRECTORY = "removed"


class RemovedSamples:
    def __init__(self, seed: int, per_reason: int = SAMPLES_PER_REASON):
        self.seed = seed
        self.per_reason = per_reason
        self._heaps: dict[str, list[tuple[int, int, str, str]]] = {}

    def offer(self, reason: str, index: int, detail: str, text: str) -> None:
        key = -int.from_bytes(hashlib.blake2b(f"{self.seed}:{index}".encode(), digest_size=8).digest(), "big")
        heap = self._heaps.setdefault(reason, [])
        item = (key, index, detail, text)
        if len(heap) < self.per_reason:
            heapq.heappush(heap, item)
        elif key > heap[0][0]:  # a smaller hash than the largest kept
            heapq.heapreplace(heap, item)

    def write(self, directory: Path) -> None:
        if not self._heaps:
            return
        out = directory / DIRECTORY
        out.mkdir(exist_ok=True)
        for reason, heap in sorted(self._heaps.items()):
            blocks = [f"# document {index}" + (f": {detail}" if detail else "") + f"\n{text}"
                      for _, index, detail, text in sorted(heap, key=lambda item: item[1])]
            (out / f"{reason}.txt").write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
