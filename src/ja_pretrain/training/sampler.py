"""The order in which training samples are read: a fresh permutation per epoch, fixed by (seed, epoch).

The trainer's data position is the number of samples the whole job has consumed; sample number
p of the job is `permutation(seed, p // N)[p % N]`. A global micro-batch is a contiguous run of
positions and each rank takes its rows of it, so ranks never share a sample within a step, and
a resumed run (which only needs the position) reads exactly what the uninterrupted run would.
"""

from __future__ import annotations

import numpy as np


class SampleOrder:
    def __init__(self, num_samples: int, seed: int):
        if num_samples < 1:
            raise ValueError("no samples to train on")
        self.num_samples = num_samples
        self.seed = seed
        self._epoch = -1
        self._permutation = np.empty(0, dtype=np.int64)

    def permutation(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            rng = np.random.default_rng([self.seed, epoch])
            self._permutation = rng.permutation(self.num_samples).astype(np.int64)
            self._epoch = epoch
        return self._permutation

    def indices(self, start: int, count: int) -> np.ndarray:
        """Sample indices at job positions start, start+1, ..., start+count-1 (crossing epochs as needed)."""
        out = np.empty(count, dtype=np.int64)
        filled = 0
        while filled < count:
            position = start + filled
            epoch, offset = divmod(position, self.num_samples)
            take = min(count - filled, self.num_samples - offset)
            out[filled:filled + take] = self.permutation(epoch)[offset:offset + take]
            filled += take
        return out
