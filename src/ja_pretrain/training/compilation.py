"""Whether a run compiles its objective with torch.compile (`run-pretraining --compile` /
`--no_compile`; by default where it was measured to win).

Measured on this project's 2-core CPU (benchmarks/train_bench.py, "ours with --compile"):
ModernBERT-small's step took about 0.75x the CPU time compiled, from the second step on; the
first step compiles, about 90 CPU seconds, so a run needs some hundreds of steps before it has
won that back. BERT-small's step was no faster compiled (its CPU attention breaks the graph). No
GPU has been measured, so a GPU run compiles only when asked.
"""

from __future__ import annotations

import torch

# (device type, model family) pairs where a compiled step measured faster
MEASURED_WINS = {("cpu", "modernbert")}
MIN_STEPS = 500  # steps left to run before the compile time (once per process) is worth paying


def should_compile(choice: bool | None, family: str, device: torch.device, steps_left: int) -> bool:
    """`choice` when given (--compile / --no_compile); by default, where measured to win and the
    run is long enough to repay the compile."""
    if choice is not None:
        return choice
    return (device.type, family) in MEASURED_WINS and steps_left >= MIN_STEPS
